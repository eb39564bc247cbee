//! URL paths of the Kubernetes API, parsed into what they name.

use percent_encoding::percent_decode_str;

use crate::resources::Catalog;

/// What a request path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Version,
    /// `/healthz`, `/livez`, `/readyz`.
    Health,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`.
    ResourceList {
        group: String,
        version: String,
    },
    OpenApiV2,
    OpenApiV3Root,
    /// `/openapi/v3/<key>` where key is `api/v1` or `apis/<group>/<version>`.
    OpenApiV3(String),
    Resource(ResourcePath),
    NotFound,
}

/// A path into the resource tree: collection, item or subresource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` prefix form.
    pub watch: bool,
}

fn decode(seg: &str) -> String {
    percent_decode_str(seg).decode_utf8_lossy().into_owned()
}

/// Parses a path (without query). The catalog tells `/api/v1/namespaces/x/pods`
/// (pods in x) from `/api/v1/namespaces/x/status` (the namespace's status).
pub fn parse(path: &str, catalog: &Catalog) -> Route {
    let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(decode).collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["version"] => Route::Version,
        ["healthz"] | ["livez"] | ["readyz"] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["api", version] => Route::ResourceList { group: String::new(), version: version.to_string() },
        ["apis", group, version] => Route::ResourceList { group: group.to_string(), version: version.to_string() },
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        ["api", version, rest @ ..] => resource("", version, rest, catalog),
        ["apis", group, version, rest @ ..] => resource(group, version, rest, catalog),
        _ => Route::NotFound,
    }
}

fn resource(group: &str, version: &str, rest: &[&str], catalog: &Catalog) -> Route {
    let (watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let owned = |s: Option<&&str>| s.map(|s| s.to_string());
    let namespaced_plural = |p: &str| catalog.lookup(group, version, p).is_some_and(|i| i.resource.namespaced);
    let path = match rest {
        ["namespaces", ns, plural, tail @ ..] if namespaced_plural(plural) && tail.len() <= 2 => ResourcePath {
            group: group.into(),
            version: version.into(),
            plural: plural.to_string(),
            namespace: Some(ns.to_string()),
            name: owned(tail.first()),
            subresource: owned(tail.get(1)),
            watch,
        },
        [plural, tail @ ..] if tail.len() <= 2 => ResourcePath {
            group: group.into(),
            version: version.into(),
            plural: plural.to_string(),
            namespace: None,
            name: owned(tail.first()),
            subresource: owned(tail.get(1)),
            watch,
        },
        _ => return Route::NotFound,
    };
    Route::Resource(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(group: &str, plural: &str, ns: Option<&str>, name: Option<&str>, sub: Option<&str>) -> Route {
        Route::Resource(ResourcePath {
            group: group.into(),
            version: "v1".into(),
            plural: plural.into(),
            namespace: ns.map(String::from),
            name: name.map(String::from),
            subresource: sub.map(String::from),
            watch: false,
        })
    }

    #[test]
    fn resource_paths() {
        let c = Catalog::builtin();
        assert_eq!(parse("/api/v1/namespaces/sample/pods", &c), rp("", "pods", Some("sample"), None, None));
        assert_eq!(
            parse("/api/v1/namespaces/sample/pods/p1/exec", &c),
            rp("", "pods", Some("sample"), Some("p1"), Some("exec"))
        );
        assert_eq!(parse("/api/v1/namespaces/sample", &c), rp("", "namespaces", None, Some("sample"), None));
        assert_eq!(
            parse("/api/v1/namespaces/sample/status", &c),
            rp("", "namespaces", None, Some("sample"), Some("status"))
        );
        assert_eq!(parse("/api/v1/namespaces", &c), rp("", "namespaces", None, None, None));
        assert_eq!(parse("/api/v1/pods", &c), rp("", "pods", None, None, None));
        assert_eq!(
            parse("/apis/apps/v1/namespaces/a/deployments/d/scale", &c),
            rp("apps", "deployments", Some("a"), Some("d"), Some("scale"))
        );
        let Route::Resource(w) = parse("/api/v1/watch/namespaces/a/configmaps", &c) else { panic!("route") };
        assert!(w.watch && w.namespace.as_deref() == Some("a"));
        assert_eq!(parse("/api/v1/namespaces/a/pods/p/exec/extra", &c), Route::NotFound);
    }

    #[test]
    fn discovery_paths() {
        let c = Catalog::builtin();
        assert_eq!(parse("/version", &c), Route::Version);
        assert_eq!(parse("/api", &c), Route::CoreVersions);
        assert_eq!(parse("/apis/", &c), Route::Groups);
        assert_eq!(parse("/apis/apps", &c), Route::Group("apps".into()));
        assert_eq!(parse("/apis/apps/v1", &c), Route::ResourceList { group: "apps".into(), version: "v1".into() });
        assert_eq!(parse("/openapi/v3/apis/apps/v1", &c), Route::OpenApiV3("apis/apps/v1".into()));
        assert_eq!(parse("/nope", &c), Route::NotFound);
    }
}
