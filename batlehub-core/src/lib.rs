#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod audit;
pub mod baseurl;
pub mod body;
pub mod clock;
pub mod coords;
pub mod digest;
pub mod error;
pub mod hub;
pub mod memo;
pub mod model;
pub mod policy;
pub mod protocol;
pub mod registry;
pub mod store;
pub mod sweep;
pub mod upstream;
pub mod versions;

pub use audit::AuditSink;
pub use baseurl::{BaseUrl, ClientAddr, client_ip};
pub use body::Body;
pub use clock::{Clock, FakeClock, SystemClock};
pub use error::{ConfigError, Denial, Error, Result};
pub use hub::{Hub, HubBuilder};
pub use memo::MemoCache;
pub use model::{AuthThrottled, Identity, Mode, Permission, Principal, Role};
pub use policy::{
    AllowAll, Caller, CommitFacts, DefaultPolicy, Outcome, Policy, PolicyCx, PublishFacts,
    Signature, VersionFacts,
};
pub use registry::{
    Artifact, Document, DocumentRef, LocalIndex, Registry, RegistryConfig, Staged, UploadSlot,
};
pub use store::{BlobStore, Index, Storage};
pub use sweep::{BlobSweeper, SweepReport};
pub use upstream::{UpstreamAuth, UpstreamClient, UpstreamOptions};

/// What `protocol_service!` expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use bytes::Bytes;
    pub use http;
    pub use http_body;
    pub use tower_service::Service;
}
