#!/usr/bin/env node
'use strict'
require('../dist/bin/cli.js').run()
