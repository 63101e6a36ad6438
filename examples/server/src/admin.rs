//! The admin API under `/api/v1/admin/`: tokens, owners, namespaces, visibility, blocks and
//! the audit log. Every call needs the admin role; every change is audited.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use batlehub::core::model::{
    AuditEvent, AuditQuery, Block, Namespace, Owner, TokenRecord, Visibility,
};
use batlehub::core::{AuditSink, Clock, Error, Index};
use batlehub::{Identity, Role};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kinds::Kind;

/// Called with a token id when it is revoked, so caches drop it at once.
pub type RevokeHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The metadata index.
    pub index: Arc<dyn Index>,
    /// The audit writer.
    pub audit: AuditSink,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Configured registry name -> its kind (type).
    pub registries: Arc<BTreeMap<String, &'static Kind>>,
    /// Token revocation hook (PAT cache).
    pub on_revoke: Option<RevokeHook>,
    /// Background work that lives as long as the router (the orphan sweep): aborted when
    /// the last clone of the state is dropped.
    pub background: Option<Arc<crate::Background>>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("registries", &self.registries)
            .finish_non_exhaustive()
    }
}

/// An admin API error: `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"batlehub\""),
            );
        }
        resp
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e.status(), e.client_message())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

type ApiResult<T = Response> = Result<T, ApiError>;

/// The admin router, to be nested at `/api/v1/admin`.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route(
            "/registries/{registry}/owners",
            get(list_owners).post(add_owner).delete(remove_owner),
        )
        .route(
            "/registries/{registry}/namespaces",
            get(list_namespaces)
                .post(add_namespace)
                .delete(remove_namespace),
        )
        .route(
            "/registries/{registry}/visibility",
            get(get_visibility).put(set_visibility),
        )
        .route("/registries/{registry}/yank", axum::routing::post(yank))
        .route("/blocks", get(list_blocks).post(add_block))
        .route("/blocks/{id}", delete(remove_block))
        .route("/audit", get(query_audit))
        .with_state(state)
}

/// The calling admin's principal id: every admin handler takes one, so a call without the
/// admin role is refused before anything else is read.
#[derive(Debug)]
struct Admin(String);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if let Some(t) = parts.extensions.get::<batlehub::core::AuthThrottled>() {
            return Err(ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed authentications from this address; try again in {} s",
                    t.retry_after
                ),
            ));
        }
        match parts
            .extensions
            .get::<Identity>()
            .cloned()
            .unwrap_or_default()
        {
            Identity::User(p) if p.role == Role::Admin => Ok(Admin(p.id)),
            Identity::User(p) => Err(ApiError(
                StatusCode::FORBIDDEN,
                format!("`{}` is not an admin", p.id),
            )),
            Identity::Invalid(reason) => Err(ApiError(StatusCode::UNAUTHORIZED, reason)),
            Identity::Anonymous => Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "the admin API needs an admin token".into(),
            )),
        }
    }
}

/// The configured registry named by `/registries/{registry}/...`, with its kind.
#[derive(Debug)]
struct Reg {
    name: String,
    kind: &'static Kind,
}

impl FromRequestParts<AdminState> for Reg {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AdminState) -> Result<Self, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, st)
            .await
            .map_err(|e| bad(e.body_text()))?;
        st.registry(&name)
    }
}

impl Reg {
    /// The key `raw` is stored under in this registry (cargo: `Serde_JSON` is
    /// `serde-json`; PyPI: PEP 503), refusing names the protocol does not allow.
    fn key(&self, raw: &str) -> ApiResult<String> {
        check_package(raw)?;
        (self.kind.package_key)(raw).map_err(|e| bad(e.client_message()))
    }
}

impl AdminState {
    fn registry(&self, name: &str) -> ApiResult<Reg> {
        match self.registries.get(name) {
            Some(kind) => Ok(Reg {
                name: name.to_owned(),
                kind,
            }),
            None => Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no registry named `{name}`"),
            )),
        }
    }

    fn record(
        &self,
        who: &str,
        registry: &str,
        action: &str,
        package: Option<&str>,
        version: Option<&str>,
    ) {
        self.audit.record(AuditEvent {
            at: self.clock.now(),
            registry: registry.to_owned(),
            action: action.to_owned(),
            package: package.map(str::to_owned),
            version: version.map(str::to_owned),
            principal: who.to_owned(),
            outcome: "allow".into(),
            rule: None,
            reason: None,
            client_ip: None,
        });
    }
}

fn check_package(package: &str) -> ApiResult<()> {
    batlehub::core::coords::check_path("package", package).map_err(|e| bad(e.to_string()))
}

// ---- tokens ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    principal: String,
    #[serde(default = "user_role")]
    role: Role,
    #[serde(default)]
    groups: Vec<String>,
    description: Option<String>,
    expires_in_secs: Option<u64>,
}

fn user_role() -> Role {
    Role::User
}

fn token_json(t: &TokenRecord) -> Value {
    json!({
        "id": t.id, "principal": t.principal, "role": t.role, "groups": t.groups,
        "description": t.description, "created_at": t.created_at, "expires_at": t.expires_at,
        "revoked_at": t.revoked_at, "created_by": t.created_by,
    })
}

async fn create_token(
    State(st): State<AdminState>,
    Admin(who): Admin,
    Json(req): Json<NewToken>,
) -> ApiResult {
    batlehub::core::coords::check_segment("principal", &req.principal)
        .map_err(|e| bad(e.to_string()))?;
    if req.role == Role::Anonymous {
        return Err(bad("role must be user or admin"));
    }
    let now = st.clock.now();
    let expires_at = req
        .expires_in_secs
        .map(|s| i64::try_from(s).map(|s| now + chrono::Duration::seconds(s)))
        .transpose()
        .map_err(|_| bad("expires_in_secs is too large"))?;
    let (token, record) = batlehub::auth::new_personal_token(
        &req.principal,
        req.role,
        req.groups,
        req.description,
        expires_at,
        &who,
        now,
    );
    st.index.create_token(&record).await?;
    st.record(&who, "", "admin.token.create", None, None);
    let mut body = token_json(&record);
    body["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list_tokens(State(st): State<AdminState>, _: Admin) -> ApiResult {
    let tokens = st.index.list_tokens().await?;
    Ok(Json(tokens.iter().map(token_json).collect::<Vec<_>>()).into_response())
}

async fn revoke_token(
    State(st): State<AdminState>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult {
    if !st.index.revoke_token(&id, st.clock.now()).await? {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no active token `{id}`"),
        ));
    }
    if let Some(hook) = &st.on_revoke {
        hook(&id);
    }
    st.record(&who, "", "admin.token.revoke", None, None);
    Ok(Json(json!({ "ok": true, "id": id })).into_response())
}

// ---- owners ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct PackageQuery {
    package: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnerBody {
    package: String,
    kind: String,
    name: String,
}

fn owner_of(kind: &str, name: &str) -> ApiResult<Owner> {
    batlehub::core::coords::check_segment("owner name", name).map_err(|e| bad(e.to_string()))?;
    match kind {
        "user" => Ok(Owner::User(name.to_owned())),
        "group" => Ok(Owner::Group(name.to_owned())),
        other => Err(bad(format!(
            "owner kind must be user or group, not `{other}`"
        ))),
    }
}

async fn list_owners(
    State(st): State<AdminState>,
    _: Admin,
    reg: Reg,
    Query(q): Query<PackageQuery>,
) -> ApiResult {
    let raw = q.package.ok_or_else(|| bad("?package= is required"))?;
    let package = reg.key(&raw)?;
    let owners = st.index.owners(&reg.name, &package).await?;
    Ok(Json(json!({ "package": package, "owners": owners })).into_response())
}

async fn add_owner(
    State(st): State<AdminState>,
    Admin(who): Admin,
    reg: Reg,
    Json(b): Json<OwnerBody>,
) -> ApiResult {
    let package = reg.key(&b.package)?;
    let owner = owner_of(&b.kind, &b.name)?;
    let added = st.index.add_owner(&reg.name, &package, &owner).await?;
    st.record(&who, &reg.name, "admin.owner.add", Some(&package), None);
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "ok": true, "added": added }))).into_response())
}

#[derive(Debug, Deserialize)]
struct OwnerQuery {
    package: String,
    kind: String,
    name: String,
}

async fn remove_owner(
    State(st): State<AdminState>,
    Admin(who): Admin,
    reg: Reg,
    Query(q): Query<OwnerQuery>,
) -> ApiResult {
    let package = reg.key(&q.package)?;
    let owner = owner_of(&q.kind, &q.name)?;
    if !st.index.remove_owner(&reg.name, &package, &owner).await? {
        if st.index.owners(&reg.name, &package).await?.contains(&owner) {
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!(
                    "`{}` is the last owner of `{package}`: a package without owners could be taken by anyone; add another owner first",
                    q.name
                ),
            ));
        }
        return Err(ApiError(StatusCode::NOT_FOUND, "not an owner".into()));
    }
    st.record(&who, &reg.name, "admin.owner.remove", Some(&package), None);
    Ok(Json(json!({ "ok": true })).into_response())
}

// ---- namespaces ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceBody {
    prefix: String,
    group: String,
}

async fn list_namespaces(State(st): State<AdminState>, _: Admin, reg: Reg) -> ApiResult {
    Ok(Json(st.index.namespaces(&reg.name).await?).into_response())
}

async fn add_namespace(
    State(st): State<AdminState>,
    Admin(who): Admin,
    reg: Reg,
    Json(b): Json<NamespaceBody>,
) -> ApiResult {
    if b.prefix.is_empty()
        || b.prefix.len() > 214
        || b.prefix.chars().any(|c| c.is_control() || c == '\\')
    {
        return Err(bad("prefix must be 1-214 printable characters"));
    }
    batlehub::core::coords::check_segment("group", &b.group).map_err(|e| bad(e.to_string()))?;
    let ns = Namespace {
        registry: reg.name.clone(),
        prefix: b.prefix.clone(),
        group: b.group,
    };
    if !st.index.add_namespace(&ns).await? {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("prefix `{}` is already claimed", b.prefix),
        ));
    }
    st.record(
        &who,
        &reg.name,
        "admin.namespace.add",
        Some(&b.prefix),
        None,
    );
    Ok((StatusCode::CREATED, Json(ns)).into_response())
}

#[derive(Debug, Deserialize)]
struct PrefixQuery {
    prefix: String,
}

async fn remove_namespace(
    State(st): State<AdminState>,
    Admin(who): Admin,
    reg: Reg,
    Query(q): Query<PrefixQuery>,
) -> ApiResult {
    if !st.index.remove_namespace(&reg.name, &q.prefix).await? {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("prefix `{}` is not claimed", q.prefix),
        ));
    }
    st.record(
        &who,
        &reg.name,
        "admin.namespace.remove",
        Some(&q.prefix),
        None,
    );
    Ok(Json(json!({ "ok": true })).into_response())
}

// ---- visibility ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VisibilityBody {
    package: String,
    visibility: Visibility,
}

async fn get_visibility(
    State(st): State<AdminState>,
    _: Admin,
    reg: Reg,
    Query(q): Query<PackageQuery>,
) -> ApiResult {
    match q.package {
        Some(raw) => {
            let package = reg.key(&raw)?;
            let v = st.index.visibility(&reg.name, &package).await?;
            Ok(Json(json!({ "package": package, "visibility": v })).into_response())
        }
        None => {
            let list = st.index.restricted_packages(&reg.name).await?;
            let list: Vec<Value> = list
                .into_iter()
                .map(|(p, v)| json!({ "package": p, "visibility": v }))
                .collect();
            Ok(Json(list).into_response())
        }
    }
}

async fn set_visibility(
    State(st): State<AdminState>,
    Admin(who): Admin,
    reg: Reg,
    Json(b): Json<VisibilityBody>,
) -> ApiResult {
    let package = reg.key(&b.package)?;
    st.index
        .set_visibility(&reg.name, &package, b.visibility)
        .await?;
    st.record(
        &who,
        &reg.name,
        "admin.visibility.set",
        Some(&package),
        None,
    );
    Ok(Json(json!({ "package": package, "visibility": b.visibility })).into_response())
}

// ---- yank -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YankBody {
    package: String,
    version: String,
    yanked: bool,
    reason: Option<String>,
}

/// Yanks or restores a version (PEP 592 semantics for PyPI; the index's yanked flag for
/// every type: resolvers skip yanked versions unless pinned exactly).
async fn yank(
    State(st): State<AdminState>,
    Admin(who): Admin,
    reg: Reg,
    Json(b): Json<YankBody>,
) -> ApiResult {
    let key = reg.key(&b.package)?;
    batlehub::core::coords::check_segment("version", &b.version).map_err(|e| bad(e.to_string()))?;
    let package = (reg.kind.yank)(
        st.index.as_ref(),
        &reg.name,
        &key,
        &b.version,
        b.yanked,
        b.reason.as_deref(),
    )
    .await?;
    let action = if b.yanked {
        "admin.yank"
    } else {
        "admin.unyank"
    };
    st.record(&who, &reg.name, action, Some(&package), Some(&b.version));
    Ok(
        Json(json!({ "package": package, "version": b.version, "yanked": b.yanked }))
            .into_response(),
    )
}

// ---- blocks ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct RegistryFilter {
    registry: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockBody {
    registry: String,
    package: String,
    versions: Option<String>,
    reason: String,
}

async fn list_blocks(
    State(st): State<AdminState>,
    _: Admin,
    Query(q): Query<RegistryFilter>,
) -> ApiResult {
    Ok(Json(st.index.list_blocks(q.registry.as_deref()).await?).into_response())
}

async fn add_block(
    State(st): State<AdminState>,
    Admin(who): Admin,
    Json(b): Json<BlockBody>,
) -> ApiResult {
    let package = st.registry(&b.registry)?.key(&b.package)?;
    if b.reason.trim().is_empty() {
        return Err(bad("a block needs a reason: clients are shown it"));
    }
    if let Some(spec) = &b.versions
        && semver::Version::parse(spec).is_err()
        && semver::VersionReq::parse(spec).is_err()
    {
        batlehub::core::coords::check_segment("versions", spec).map_err(|e| bad(e.to_string()))?;
    }
    let block = Block {
        id: uuid::Uuid::new_v4().to_string(),
        registry: b.registry,
        package,
        versions: b.versions,
        reason: b.reason,
        created_by: who.clone(),
        created_at: st.clock.now(),
    };
    st.index.add_block(&block).await?;
    st.record(
        &who,
        &block.registry,
        "admin.block.add",
        Some(&block.package),
        block.versions.as_deref(),
    );
    Ok((StatusCode::CREATED, Json(block)).into_response())
}

async fn remove_block(
    State(st): State<AdminState>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult {
    if !st.index.remove_block(&id).await? {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no block `{id}`")));
    }
    st.record(&who, "", "admin.block.remove", None, None);
    Ok(Json(json!({ "ok": true })).into_response())
}

// ---- audit -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    registry: Option<String>,
    package: Option<String>,
    version: Option<String>,
    principal: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn query_audit(
    State(st): State<AdminState>,
    _: Admin,
    Query(p): Query<AuditParams>,
) -> ApiResult {
    st.audit.flush().await;
    let q = AuditQuery {
        registry: p.registry,
        package: p.package,
        version: p.version,
        principal: p.principal,
        action: p.action,
        outcome: p.outcome,
        since: p.since,
        until: p.until,
        limit: p.limit,
        offset: p.offset,
    };
    Ok(Json(st.index.query_audit(&q).await?).into_response())
}
