//! Frames and headers: small pure functions, tested without sockets.

use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

use super::bounds::Reader;

/// The largest frame the proxy accepts (Kafka's own default limit for a
/// request is 100 MiB of `socket.request.max.bytes`; a client never comes near).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Why a frame could not be handled. Any of these closes its connection pair.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    #[error("frame length {0} exceeds the proxy's limit of {MAX_FRAME_BYTES} bytes")]
    TooLong(i32),
    #[error("undecodable request header: {0}")]
    BadHeader(String),
    #[error("a response to correlation id {0}, which was never requested on this connection")]
    UnknownCorrelation(i32),
    #[error("undecodable {api} v{version} message: {detail}")]
    BadBody {
        api: &'static str,
        version: i16,
        detail: String,
    },
    #[error("no proxy listener for broker {0}")]
    Route(String),
}

/// One frame's content, without its 4-byte length prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub payload: &'a [u8],
}

/// Reads one size-prefixed frame from the front of `buf`: `Ok(None)` if more
/// bytes are needed, otherwise the frame and how many bytes of `buf` it took
/// (prefix included).
pub fn read_frame(
    buf: &[u8],
) -> std::result::Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len < 0 {
        return Err(FrameError::NegativeLength(len));
    }
    if len as usize > MAX_FRAME_BYTES {
        return Err(FrameError::TooLong(len));
    }
    let end = 4 + len as usize;
    Ok(buf.get(4..end).map(|payload| (Frame { payload }, end)))
}

/// The bytes of a frame: the length prefix, then `payload`.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Accumulates the bytes of one direction of a connection and hands out whole
/// frames, however the stream was split into reads.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    pos: usize,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Appends bytes read from the socket.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, length prefix included, if one is buffered.
    pub fn next_frame(&mut self) -> std::result::Result<Option<&[u8]>, FrameError> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        match read_frame(rest)? {
            None => Ok(None),
            Some((_, used)) => {
                let start = self.pos;
                self.pos += used;
                Ok(self.buf.get(start..start + used))
            }
        }
    }

    /// Bytes buffered but not yet handed out.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// What the proxy needs from a request header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    /// Bytes of the header: the request body starts here.
    pub header_len: usize,
}

/// Decodes a request header (header v1 or v2, as the api key and version
/// require) with kafka-protocol.
pub fn decode_request_header(
    payload: &[u8],
) -> std::result::Result<RequestInfo, FrameError> {
    let bad = |detail: String| FrameError::BadHeader(detail);
    if payload.len() < 8 {
        return Err(bad(format!(
            "{} bytes, fewer than the 8 of any header",
            payload.len()
        )));
    }
    let api_key = i16::from_be_bytes([payload[0], payload[1]]);
    let api_version = i16::from_be_bytes([payload[2], payload[3]]);
    let api = ApiKey::try_from(api_key)
        .map_err(|_| bad(format!("unknown api key {api_key}")))?;
    let header_version = api.request_header_version(api_version);
    let mut rest = payload;
    let header = RequestHeader::decode(&mut rest, header_version)
        .map_err(|e| bad(format!("{api:?} v{api_version}: {e}")))?;
    Ok(RequestInfo {
        api_key,
        api_version,
        correlation_id: header.correlation_id,
        header_len: payload.len() - rest.len(),
    })
}

/// The `acks` of a Produce request body (after its header).
pub fn produce_acks(body: &[u8], version: i16) -> std::result::Result<i16, FrameError> {
    let bad = |detail: &str| FrameError::BadBody {
        api: "Produce",
        version,
        detail: detail.to_string(),
    };
    let mut r = Reader::new(body);
    if version >= 3 {
        // transactional_id, a nullable string (compact from v9).
        r.string(version >= 9).map_err(|e| bad(&e))?;
    }
    r.i16().map_err(|e| bad(&e))
}

/// The correlation id of a response: its first four bytes, in both header versions.
pub fn response_correlation_id(payload: &[u8]) -> std::result::Result<i32, FrameError> {
    match payload.get(..4) {
        Some(b) => Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(FrameError::BadBody {
            api: "response header",
            version: 0,
            detail: format!("{} bytes, fewer than a correlation id", payload.len()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::proxy::testkit::{request_frame, str_bytes};
    use kafka_protocol::messages::{
        ApiVersionsRequest, ProduceRequest, TransactionalId,
    };
    use proptest::prelude::*;

    #[test]
    fn read_frame_needs_four_bytes_then_the_whole_payload() {
        assert_eq!(read_frame(&[]), Ok(None));
        assert_eq!(read_frame(&[0, 0, 0]), Ok(None));
        assert_eq!(read_frame(&[0, 0, 0, 2, 7]), Ok(None));
        let (frame, used) = read_frame(&[0, 0, 0, 2, 7, 8, 9]).unwrap().unwrap();
        assert_eq!((frame.payload, used), (&[7u8, 8][..], 6));
        let (frame, used) = read_frame(&[0, 0, 0, 0, 1]).unwrap().unwrap();
        assert_eq!((frame.payload, used), (&[][..], 4));
        assert_eq!(
            read_frame(&[0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::NegativeLength(-1))
        );
        let too_long = (MAX_FRAME_BYTES as i32 + 1).to_be_bytes();
        assert_eq!(
            read_frame(&too_long),
            Err(FrameError::TooLong(MAX_FRAME_BYTES as i32 + 1))
        );
        // The limit itself is still a frame (waiting for its bytes).
        assert_eq!(
            read_frame(&(MAX_FRAME_BYTES as i32).to_be_bytes()),
            Ok(None)
        );
    }

    #[test]
    fn request_headers_decode_at_every_header_version() {
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000);
        for version in 3..=13 {
            let frame = request_frame(
                ApiKey::Produce,
                version,
                1000 + version as i32,
                &produce,
            );
            let info = decode_request_header(&frame[4..]).unwrap();
            assert_eq!(
                (info.api_key, info.api_version, info.correlation_id),
                (0, version, 1000 + version as i32)
            );
            // header v1: 8 bytes + client id (2 + 10); v2 adds one byte of tagged fields.
            let expected = if version >= 9 { 21 } else { 20 };
            assert_eq!(info.header_len, expected, "v{version}");
        }
        let frame =
            request_frame(ApiKey::ApiVersions, 3, 7, &ApiVersionsRequest::default());
        assert_eq!(
            decode_request_header(&frame[4..]).unwrap().correlation_id,
            7
        );
        // Unknown api key, too short, a client id longer than the frame.
        assert!(decode_request_header(&[0x7f, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(decode_request_header(&[0, 3, 0, 12]).is_err());
        assert!(decode_request_header(&[0, 3, 0, 1, 0, 0, 0, 1, 0, 50, b'x']).is_err());
    }

    #[test]
    fn produce_acks_are_read_in_every_version_with_and_without_a_transactional_id() {
        for version in 3..=13 {
            for acks in [0i16, 1, -1] {
                for txn in [None, Some("a-transactional-id")] {
                    let body = ProduceRequest::default()
                        .with_acks(acks)
                        .with_timeout_ms(1234)
                        .with_transactional_id(
                            txn.map(|t| TransactionalId(str_bytes(t))),
                        );
                    let frame = request_frame(ApiKey::Produce, version, 1, &body);
                    let info = decode_request_header(&frame[4..]).unwrap();
                    let got =
                        produce_acks(&frame[4 + info.header_len..], version).unwrap();
                    assert_eq!(got, acks, "v{version} txn={txn:?}");
                }
            }
        }
        assert!(produce_acks(&[0, 5, b'a'], 3).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_frame_reader(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            match read_frame(&bytes) {
                Ok(Some((frame, used))) => {
                    prop_assert!(used <= bytes.len());
                    prop_assert_eq!(frame.payload.len() + 4, used);
                }
                Ok(None) => {}
                Err(FrameError::NegativeLength(n)) => prop_assert!(n < 0),
                Err(FrameError::TooLong(n)) => prop_assert!(n as usize > MAX_FRAME_BYTES),
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
            let mut reader = FrameReader::new();
            reader.extend(&bytes);
            while let Ok(Some(_)) = reader.next_frame() {}
        }

        #[test]
        fn a_frame_split_at_any_point_reassembles(
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            before in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let first = encode_frame(&before);
            let frame = encode_frame(&payload);
            for split in 0..=frame.len() {
                if split < frame.len() {
                    prop_assert_eq!(read_frame(&frame[..split]), Ok(None));
                }
                let mut reader = FrameReader::new();
                reader.extend(&first);
                reader.extend(&frame[..split]);
                prop_assert_eq!(reader.next_frame().unwrap(), Some(&first[..]));
                if split < frame.len() {
                    prop_assert_eq!(reader.next_frame().unwrap(), None);
                }
                reader.extend(&frame[split..]);
                if split < frame.len() {
                    prop_assert_eq!(reader.next_frame().unwrap(), Some(&frame[..]));
                } else {
                    prop_assert_eq!(reader.next_frame().unwrap(), Some(&frame[..]));
                }
                prop_assert_eq!(reader.next_frame().unwrap(), None);
                prop_assert_eq!(reader.pending_bytes(), 0);
            }
        }

        #[test]
        fn a_stream_of_frames_chunked_anyhow_comes_out_whole_and_in_order(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..10),
            chunk_sizes in proptest::collection::vec(1usize..50, 1..20),
        ) {
            let stream: Vec<u8> = payloads.iter().flat_map(|p| encode_frame(p)).collect();
            let mut reader = FrameReader::new();
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut at = 0;
            let mut sizes = chunk_sizes.iter().cycle();
            while at < stream.len() {
                let n = (*sizes.next().unwrap()).min(stream.len() - at);
                reader.extend(&stream[at..at + n]);
                at += n;
                while let Some(raw) = reader.next_frame().unwrap() {
                    got.push(raw[4..].to_vec());
                }
            }
            prop_assert_eq!(got, payloads);
        }
    }
}
