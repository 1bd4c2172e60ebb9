//! X-Xumm-User-Token handles: what a backend app gets instead of Xumm's user token. A handle is
//! the session id and the app's name, sealed with the cookie keys. It must never contain or
//! reveal Xumm's user token, and never resolve for another app or after sign-out.

use std::sync::Arc;

use http::HeaderValue;

use crate::auth::Auth;
use crate::session::{Session, SessionStore};

const NAME: &str = "xumm_user_token_handle";

/// The handle for this session and app (sealed once per session and app, then reused).
pub fn for_session(auth: &Auth, s: &Session, app: &Arc<str>) -> Option<HeaderValue> {
    let id = s.id.as_ref()?;
    s.user_token.as_ref()?;
    let mut cache = s.handles.lock().ok()?;
    if let Some((_, v)) = cache.iter().find(|(a, _)| a == app) {
        return Some(v.clone());
    }
    let v = HeaderValue::from_str(&auth.sealer.seal(NAME, &format!("{app}|{id}"))).ok()?;
    cache.push((app.clone(), v.clone()));
    Some(v)
}

/// The signed-in session a handle stands for, if it opens, names `app`, and the session lives.
pub async fn resolve(auth: &Auth, handle: &str, app: &str) -> Option<Arc<Session>> {
    let opened = auth.sealer.open(NAME, handle)?;
    let (for_app, id) = opened.split_once('|')?;
    if for_app != app {
        return None;
    }
    auth.store.get(id).await.ok().flatten()
}
