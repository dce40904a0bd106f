//! Kafka through a fault proxy: clients follow the broker addresses the broker advertises, so a
//! proxy that only forwards bytes is bypassed after the first Metadata answer. This one reads the
//! Kafka frames, remembers what each request asked (by correlation id), and rewrites the broker
//! addresses in Metadata, FindCoordinator and DescribeCluster answers to its own — every
//! connection a client opens then goes through the proxy, and its toxics.

use std::{collections::HashMap, net::SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest frame accepted (Kafka's default `socket.request.max.bytes` is 100 MiB).
const MAX_FRAME: usize = 100 * 1024 * 1024;

/// What each request on a link asked, by correlation id.
#[derive(Default)]
pub(crate) struct Requests {
    asked: HashMap<i32, (i16, i16)>,
}

/// Reads one length-prefixed frame (prefix included); `None` at a clean end of stream.
pub(crate) async fn read_frame(
    source: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<Vec<u8>>> {
    let mut size = [0u8; 4];
    match source.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let length = usize::try_from(i32::from_be_bytes(size).max(0)).unwrap_or(0);
    if length > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a Kafka frame of {length} bytes"),
        ));
    }
    let mut frame = vec![0u8; 4 + length];
    frame[..4].copy_from_slice(&size);
    source.read_exact(&mut frame[4..]).await?;
    Ok(Some(frame))
}

impl Requests {
    /// Remembers a request's api key and version (every request header starts with them,
    /// then the correlation id).
    pub(crate) fn note_request(&mut self, frame: &[u8]) {
        if frame.len() < 12 {
            return;
        }
        let api_key = i16::from_be_bytes([frame[4], frame[5]]);
        let version = i16::from_be_bytes([frame[6], frame[7]]);
        let correlation = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
        self.asked.insert(correlation, (api_key, version));
    }

    /// The answer, with broker addresses pointing at `proxy` when it names any.
    pub(crate) fn rewrite_response(&mut self, frame: Vec<u8>, proxy: SocketAddr) -> Vec<u8> {
        if frame.len() < 8 {
            return frame;
        }
        let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let Some((api_key, version)) = self.asked.remove(&correlation) else {
            return frame;
        };
        #[cfg(feature = "kafka")]
        {
            match codec::rewrite(&frame[4..], api_key, version, proxy) {
                Some(body) => {
                    let mut out = Vec::with_capacity(body.len() + 4);
                    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
                    out.extend_from_slice(&body);
                    out
                }
                None => frame,
            }
        }
        #[cfg(not(feature = "kafka"))]
        {
            let _ = (api_key, version, proxy);
            frame
        }
    }
}

#[cfg(feature = "kafka")]
mod codec {
    use std::net::SocketAddr;

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::{
        messages::{
            ApiKey, DescribeClusterResponse, FindCoordinatorResponse, MetadataResponse,
            ResponseHeader,
        },
        protocol::{Decodable, Encodable, StrBytes},
    };

    /// The response body (after the size prefix) with its broker addresses rewritten, or `None`
    /// when the answer names no broker (or cannot be read, in which case it passes unchanged).
    pub(super) fn rewrite(
        body: &[u8],
        api_key: i16,
        version: i16,
        proxy: SocketAddr,
    ) -> Option<Vec<u8>> {
        let key = ApiKey::try_from(api_key).ok()?;
        if !matches!(
            key,
            ApiKey::Metadata | ApiKey::FindCoordinator | ApiKey::DescribeCluster
        ) {
            return None;
        }
        let header_version = key.response_header_version(version);
        let mut input = Bytes::copy_from_slice(body);
        let header = ResponseHeader::decode(&mut input, header_version).ok()?;
        let host = StrBytes::from_string(proxy.ip().to_string());
        let port = i32::from(proxy.port());
        let mut out = BytesMut::new();
        header.encode(&mut out, header_version).ok()?;
        match key {
            ApiKey::Metadata => {
                let mut response = MetadataResponse::decode(&mut input, version).ok()?;
                for broker in response.brokers.iter_mut() {
                    broker.host = host.clone();
                    broker.port = port;
                }
                response.encode(&mut out, version).ok()?;
            }
            ApiKey::FindCoordinator => {
                let mut response = FindCoordinatorResponse::decode(&mut input, version).ok()?;
                if version < 4 {
                    response.host = host.clone();
                    response.port = port;
                }
                for coordinator in response.coordinators.iter_mut() {
                    coordinator.host = host.clone();
                    coordinator.port = port;
                }
                response.encode(&mut out, version).ok()?;
            }
            ApiKey::DescribeCluster => {
                let mut response = DescribeClusterResponse::decode(&mut input, version).ok()?;
                for broker in response.brokers.iter_mut() {
                    broker.host = host.clone();
                    broker.port = port;
                }
                response.encode(&mut out, version).ok()?;
            }
            _ => return None,
        }
        Some(out.to_vec())
    }
}
