use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KafkaError {
    #[error("frame of {size} bytes is over the limit of {max}")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame size {0}")]
    NegativeSize(i32),
    #[error("message truncated: {0}")]
    Truncated(&'static str),
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    #[error("api {api_key} version {version} cannot be rewritten")]
    UnsupportedVersion { api_key: i16, version: i16 },
    #[error("cannot encode: {0}")]
    Encode(String),
}
