//! Matching a request's method and Stripe path to a listed operation.

use std::sync::Arc;

use http::Method;

use super::{Catalog, Operation};

/// A catalog indexed for matching: templates split into segments once.
pub struct CatalogIndex {
    catalog: Arc<Catalog>,
    routes: Vec<Route>,
    passthrough: Vec<(Method, String)>,
}

struct Route {
    method: Method,
    segments: Vec<Segment>,
    operation: usize,
}

enum Segment {
    Literal(String),
    Variable,
}

/// A request that is a listed operation.
pub struct Matched<'c, 'p> {
    /// The operation's description.
    pub operation: &'c Operation,
    /// The path's values for the template variables, in order.
    pub path_args: Vec<&'p str>,
}

impl CatalogIndex {
    /// Indexes `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        let routes = catalog
            .operations
            .iter()
            .enumerate()
            .filter_map(|(operation, op)| {
                let method = Method::from_bytes(op.method.as_bytes()).ok()?;
                let segments = op
                    .path
                    .split('/')
                    .skip(1)
                    .map(|part| {
                        if part.starts_with('{') && part.ends_with('}') {
                            Segment::Variable
                        } else {
                            Segment::Literal(part.to_owned())
                        }
                    })
                    .collect();
                Some(Route {
                    method,
                    segments,
                    operation,
                })
            })
            .collect();
        let passthrough = catalog
            .passthrough
            .iter()
            .filter_map(|route| {
                let (method, path) = route.split_once(' ')?;
                Some((Method::from_bytes(method.as_bytes()).ok()?, path.to_owned()))
            })
            .collect();
        Self {
            catalog,
            routes,
            passthrough,
        }
    }

    /// The catalog this index serves.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The listed operation a request is, if any. `path` is the Stripe path
    /// (`/v1/customers/cus_1`), without the query.
    pub fn find<'p>(&self, method: &Method, path: &'p str) -> Option<Matched<'_, 'p>> {
        if self
            .passthrough
            .iter()
            .any(|(m, p)| m == method && p == path)
        {
            return None;
        }
        let parts = path.strip_prefix('/')?;
        'routes: for route in &self.routes {
            if route.method != *method {
                continue;
            }
            let mut args = Vec::new();
            let mut segments = route.segments.iter();
            for part in parts.split('/') {
                match segments.next() {
                    Some(Segment::Literal(literal)) if literal == part => {}
                    Some(Segment::Variable) if !part.is_empty() => args.push(part),
                    _ => continue 'routes,
                }
            }
            if segments.next().is_some() {
                continue;
            }
            return Some(Matched {
                operation: &self.catalog.operations[route.operation],
                path_args: args,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> CatalogIndex {
        CatalogIndex::new(Arc::new(Catalog::embedded()))
    }

    #[test]
    fn listed_paths_match_with_their_arguments() {
        let index = index();
        let found = index
            .find(&Method::POST, "/v1/payment_intents/pi_1/cancel")
            .unwrap();
        assert_eq!(found.operation.id, "payment_intents.cancel");
        assert_eq!(found.path_args, ["pi_1"]);
        let found = index.find(&Method::GET, "/v1/checkout/sessions").unwrap();
        assert_eq!(found.operation.id, "checkout.sessions.list");
        let found = index.find(&Method::DELETE, "/v1/customers/cus_9").unwrap();
        assert_eq!(found.operation.id, "customers.delete");
    }

    #[test]
    fn unlisted_paths_methods_and_sibling_routes_do_not_match() {
        let index = index();
        assert!(index.find(&Method::GET, "/v1/customers/search").is_none());
        assert!(index.find(&Method::GET, "/v1/balance").is_none());
        assert!(index
            .find(&Method::DELETE, "/v1/payment_intents/pi_1")
            .is_none());
        assert!(index.find(&Method::GET, "/v1/customers/cus_1/").is_none());
        assert!(index
            .find(&Method::GET, "/v1/customers/cus_1/sources")
            .is_none());
        assert!(index.find(&Method::GET, "/v2/customers").is_none());
    }
}
