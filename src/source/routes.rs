//! Topic routing, shared by every source: a table that a `[[routes]]` entry names publishes to
//! that entry's topic, and its Kafka key gains a field naming the table's own topic (Debezium's
//! `ByLogicalTableRouter` with `key.enforce.uniqueness`), so equal keys of two tables stay two
//! rows in a compacted topic.

use crate::config::routes::RouteConfig;
use crate::core::json;
use crate::source::tables::pattern_matches;

#[derive(Clone, Debug, Default)]
pub struct Routes(Vec<RouteConfig>);

/// Where one table's changes go.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub topic: String,
    /// The key's extra field and its value (the table's own topic), if it gains one.
    pub key_field: Option<(String, String)>,
}

impl Route {
    /// `,"field":"value"`, appended inside the JSON key.
    pub fn key_suffix(&self) -> Option<Vec<u8>> {
        let (field, value) = self.key_field.as_ref()?;
        let mut out = vec![b','];
        json::write_str(&mut out, field);
        out.push(b':');
        json::write_str(&mut out, value);
        Some(out)
    }
}

impl Routes {
    pub fn new(routes: &[RouteConfig]) -> Self {
        Routes(routes.to_vec())
    }

    /// Refuses a route whose key field is also one of `schema.table`'s key columns (the key
    /// would hold the name twice).
    pub fn check_key(&self, schema: &str, table: &str, key: &[&str]) -> Result<(), String> {
        match self.route(schema, table, "").key_field {
            Some((field, _)) if key.contains(&field.as_str()) => Err(format!(
                "routes: key_field `{field}` is also a key column of {schema}.{table}; choose another key_field"
            )),
            _ => Ok(()),
        }
    }

    /// The route of `schema.table`, whose own topic is `own_topic`: the first entry that names
    /// it, else its own topic.
    pub fn route(&self, schema: &str, table: &str, own_topic: &str) -> Route {
        match self.0.iter().find(|r| r.tables.iter().any(|p| pattern_matches(p, schema, table))) {
            Some(r) => Route {
                topic: r.topic.clone(),
                key_field: r.key_field().map(|f| (f.to_string(), own_topic.to_string())),
            },
            None => Route { topic: own_topic.to_string(), key_field: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_route_wins_and_the_key_names_the_table() {
        let routes = Routes::new(&[
            RouteConfig { tables: vec!["public.orders_*".into()], topic: "shop.orders".into(), key_field: None },
            RouteConfig { tables: vec!["public.*".into()], topic: "shop.rest".into(), key_field: Some(String::new()) },
        ]);
        let r = routes.route("public", "orders_2024", "p.public.orders_2024");
        assert_eq!(r.topic, "shop.orders");
        assert_eq!(r.key_suffix().unwrap(), br#","__dbz__physicalTableIdentifier":"p.public.orders_2024""#);
        let rest = routes.route("public", "users", "p.public.users");
        assert_eq!((rest.topic.as_str(), rest.key_field), ("shop.rest", None));
        assert_eq!(routes.route("other", "t", "p.other.t").topic, "p.other.t");
    }
}
