//! The JS surface of `utp-secure`: SPAKE2, the in-stream handshake and the record layer
//!
//! lib/secure/ drives these. Data crosses per batch, never per packet: `seal` takes every buffer of
//! a `writev` and returns one buffer of records, `open` takes whatever chunk the connection read and
//! returns the plaintext of every record it completes. Keys stay on this side: JS never sees the
//! stream's AEAD keys, only the 32-byte secret of a [`NativePake`] it asked for.
//!
//! Every method catches panics (`catch_unwind`) and reports failures as JS errors whose `code` is
//! [`utp_secure::Error::code`].

use napi::bindgen_prelude::{Buffer, BufferSlice};
use napi_derive::napi;
use rand_core::OsRng;
use utp_secure::{Error, Handshake, Opener, Pake, Role, Sealer, Secret, Session};

use crate::errors::{error, Code};

fn js(e: Error) -> napi::Error<Code> {
  error(e.code(), e)
}

fn used_up() -> napi::Error<Code> {
  error("ERR_INVALID_STATE", "this object was already used up by finish()")
}

/// One side of symmetric SPAKE2 (lib/secure's `Pake`)
#[napi]
pub struct NativePake {
  state: Option<Pake>,
}

#[napi]
impl NativePake {
  /// Starts an exchange with a fresh random scalar from the OS
  #[napi(constructor, catch_unwind)]
  pub fn new(password: BufferSlice, context: String) -> napi::Result<Self, Code> {
    if password.is_empty() {
      return Err(js(Error::InvalidArgument("the password is empty")));
    }
    Ok(NativePake {
      state: Some(Pake::start(&password, context.as_bytes(), &mut OsRng)),
    })
  }

  /// The 33-byte message for the peer
  #[napi(getter, catch_unwind)]
  pub fn message(&self) -> napi::Result<Buffer, Code> {
    let state = self.state.as_ref().ok_or_else(used_up)?;
    Ok(Buffer::from(state.message().to_vec()))
  }

  /// The 32-byte shared secret from the peer's message (once)
  #[napi(catch_unwind)]
  pub fn finish(&mut self, peer_message: BufferSlice) -> napi::Result<Buffer, Code> {
    let state = self.state.take().ok_or_else(used_up)?;
    Ok(Buffer::from(state.finish(&peer_message).map_err(js)?.to_vec()))
  }
}

/// The in-stream handshake of one side
#[napi]
pub struct NativeHandshake {
  state: Option<Handshake>,
  hello: Vec<u8>,
}

#[napi]
impl NativeHandshake {
  /// Exactly one of `key` (32 bytes) and `psk` (non-empty)
  #[napi(constructor, catch_unwind)]
  pub fn new(
    initiator: bool,
    key: Option<BufferSlice>,
    psk: Option<BufferSlice>,
  ) -> napi::Result<Self, Code> {
    let secret = match (key, psk) {
      (Some(k), None) => Secret::Key(
        k.as_ref()
          .try_into()
          .map_err(|_| js(Error::InvalidArgument("the key must be 32 bytes")))?,
      ),
      (None, Some(p)) => Secret::Psk(p.to_vec()),
      _ => return Err(js(Error::InvalidArgument("pass either a key or a psk"))),
    };
    let role = if initiator {
      Role::Initiator
    } else {
      Role::Responder
    };
    let (state, hello) = Handshake::start(role, secret, &mut OsRng).map_err(js)?;
    Ok(NativeHandshake {
      state: Some(state),
      hello,
    })
  }

  /// The hello to send first
  #[napi(getter)]
  pub fn hello(&self) -> Buffer {
    Buffer::from(self.hello.clone())
  }

  /// Feeds bytes read from the connection; returns bytes to send now (often empty)
  #[napi(catch_unwind)]
  pub fn read(&mut self, chunk: BufferSlice) -> napi::Result<Buffer, Code> {
    let state = self.state.as_mut().ok_or_else(used_up)?;
    Ok(Buffer::from(state.read(&chunk).map_err(js)?))
  }

  /// Whether the peer's confirmation verified
  #[napi(getter)]
  pub fn done(&self) -> bool {
    self.state.as_ref().is_some_and(Handshake::is_done)
  }

  /// The record layer of the stream (once, when done)
  #[napi(catch_unwind)]
  pub fn finish(&mut self) -> napi::Result<NativeRecordLayer, Code> {
    let Session {
      sealer,
      opener,
      early,
    } = self
      .state
      .take()
      .ok_or_else(used_up)?
      .into_session()
      .map_err(js)?;
    Ok(NativeRecordLayer {
      sealer,
      opener,
      early,
    })
  }
}

/// Both directions of an encrypted stream
#[napi]
pub struct NativeRecordLayer {
  sealer: Sealer,
  opener: Opener,
  /// Bytes read past the handshake, opened with the first `open`
  early: Vec<u8>,
}

#[napi]
impl NativeRecordLayer {
  /// Records carrying all of `chunks`, in one buffer
  #[napi(catch_unwind)]
  pub fn seal(&mut self, chunks: Vec<BufferSlice>) -> napi::Result<Buffer, Code> {
    let total: usize = chunks.iter().map(|c| Sealer::sealed_len(c.len())).sum();
    let mut out = Vec::with_capacity(total);
    for c in &chunks {
      self.sealer.seal(c, &mut out).map_err(js)?;
    }
    Ok(Buffer::from(out))
  }

  /// The close record that ends this side's direction
  #[napi(catch_unwind)]
  pub fn seal_close(&mut self) -> napi::Result<Buffer, Code> {
    let mut out = Vec::new();
    self.sealer.seal_close(&mut out).map_err(js)?;
    Ok(Buffer::from(out))
  }

  /// The plaintext of every record `chunk` completes (empty while a record is partial)
  #[napi(catch_unwind)]
  pub fn open(&mut self, chunk: BufferSlice) -> napi::Result<Buffer, Code> {
    let mut out = Vec::with_capacity(self.early.len() + chunk.len());
    if !self.early.is_empty() {
      let early = std::mem::take(&mut self.early);
      self.opener.open(&early, &mut out).map_err(js)?;
    }
    self.opener.open(&chunk, &mut out).map_err(js)?;
    Ok(Buffer::from(out))
  }

  /// The connection ended: throws ERR_DECRYPT unless the peer's close record came
  #[napi(catch_unwind)]
  pub fn finish(&self) -> napi::Result<(), Code> {
    if !self.early.is_empty() {
      return Err(js(Error::Decrypt("unread bytes after the handshake")));
    }
    self.opener.finish().map_err(js)
  }

  /// Whether the peer's close record arrived
  #[napi(getter)]
  pub fn peer_closed(&self) -> bool {
    self.opener.is_closed()
  }
}
