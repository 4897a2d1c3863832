//! The fixed parts of the Avro schemas cdcd registers, kept in `schemas/avro/` for readers who
//! want to see them without a registry: each source block, and the envelope of an example table.
//! The test below regenerates them from the code (`CDCD_WRITE_SCHEMAS=1`) and fails when a file
//! and the code disagree, so the files cannot drift.

#[cfg(test)]
mod tests {
    use crate::core::connect::{Field, Schema, TableSchema};
    use crate::encode::avro::avro_schema;

    fn files() -> Vec<(&'static str, Schema)> {
        let example = TableSchema::new(
            "shop.public.orders",
            vec![Field::new("id", Schema::int64())],
            vec![Field::new("id", Schema::int64()), Field::new("note", Schema::string().optional())],
            crate::source::postgres::relation::source_schema().clone(),
        );
        vec![
            ("postgresql-source.avsc", crate::source::postgres::relation::source_schema().clone()),
            ("mysql-source.avsc", crate::source::mysql::table::source_schema("mysql")),
            ("mariadb-source.avsc", crate::source::mysql::table::source_schema("mariadb")),
            ("example-envelope.avsc", example.envelope),
            ("example-key.avsc", example.key.expect("the example has a key")),
        ]
    }

    #[test]
    fn schemas_folder_holds_what_cdcd_registers() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/avro");
        for (file, schema) in files() {
            let avro = avro_schema(&schema).unwrap();
            let text = serde_json::to_string_pretty(&avro).unwrap() + "\n";
            let path = dir.join(file);
            if std::env::var_os("CDCD_WRITE_SCHEMAS").is_some() {
                std::fs::write(&path, &text).unwrap();
            }
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == text,
                "{} differs from the code; CDCD_WRITE_SCHEMAS=1 cargo test rewrites it",
                path.display()
            );
        }
    }
}
