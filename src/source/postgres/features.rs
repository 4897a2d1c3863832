//! What the connected PostgreSQL offers, by version, and what cdcd asks of it: the pgoutput
//! protocol version and options, failover slots, schema publications. Read once per session
//! from `server_version_num`, so every version difference is decided here and nowhere else.

use std::fmt;

/// `server_version_num`: 170011 is 17.11.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion(pub u32);

impl ServerVersion {
    pub fn major(self) -> u32 {
        self.0 / 10_000
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major(), self.0 % 10_000)
    }
}

/// The pgoutput protocol version cdcd decodes. Versions 2-4 add in-progress transactions
/// streamed before their commit (with aborts, two-phase commits and parallel apply on top);
/// cdcd publishes committed transactions only, whole and in commit order, which version 1
/// carries on every server.
pub const PROTO_IMPLEMENTED: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    pub version: ServerVersion,
    /// The pgoutput protocol version asked for: the highest both sides speak.
    pub proto_version: u32,
    /// pgoutput's `messages` option (14+): logical decoding messages reach the stream; the
    /// snapshot's chunk watermarks are such messages.
    pub messages: bool,
    /// Slots that standbys synchronize (`failover`, 17+), so a promoted standby has them.
    pub failover_slots: bool,
    /// Publications `FOR TABLES IN SCHEMA` (15+).
    pub schema_publications: bool,
    /// Logical decoding on a physical standby (16+): a slot made there, changes decoded there.
    pub standby_decoding: bool,
    /// Publications that publish stored generated columns (`publish_generated_columns`, 18+).
    pub generated_columns: bool,
}

impl Features {
    pub fn of(version: ServerVersion) -> Features {
        let major = version.major();
        Features {
            version,
            proto_version: server_proto(major).min(PROTO_IMPLEMENTED),
            messages: major >= 14,
            failover_slots: major >= 17,
            schema_publications: major >= 15,
            standby_decoding: major >= 16,
            generated_columns: major >= 18,
        }
    }

    /// The highest pgoutput protocol version the server speaks.
    pub fn server_proto_version(&self) -> u32 {
        server_proto(self.version.major())
    }

    /// The option list of START_REPLICATION, without the publication names.
    pub fn pgoutput_options(&self) -> String {
        let mut options = format!("\"proto_version\" '{}'", self.proto_version);
        if self.messages {
            options.push_str(", \"messages\" 'true'");
        }
        options
    }

    /// What `cdcd check` says about the protocol.
    pub fn describe(&self) -> String {
        format!(
            "PostgreSQL {}: pgoutput protocol {} (the server speaks 1-{}; cdcd needs only committed transactions, which protocol 1 carries), logical decoding messages {}, failover slots {}, decoding on a standby {}, generated columns {}",
            self.version,
            self.proto_version,
            self.server_proto_version(),
            if self.messages { "on (snapshots while streaming)" } else { "unavailable (no snapshots: PostgreSQL 14 or later needed)" },
            if self.failover_slots { "available" } else { "unavailable (PostgreSQL 17 or later)" },
            if self.standby_decoding { "available" } else { "unavailable (PostgreSQL 16 or later)" },
            if self.generated_columns { "publishable" } else { "never published (PostgreSQL 18 or later)" },
        )
    }
}

/// pgoutput's protocol versions by the major that introduced them.
fn server_proto(major: u32) -> u32 {
    match major {
        0..=13 => 1,
        14 => 2,
        15 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_major_gets_the_options_it_supports() {
        let f = |v| Features::of(ServerVersion(v));
        assert_eq!(f(130_020).pgoutput_options(), "\"proto_version\" '1'");
        assert_eq!(f(140_023).pgoutput_options(), "\"proto_version\" '1', \"messages\" 'true'");
        assert!(!f(160_015).failover_slots && f(170_011).failover_slots && f(180_006).failover_slots);
        assert!(!f(140_023).schema_publications && f(150_014).schema_publications);
        assert_eq!((f(180_006).proto_version, f(180_006).server_proto_version()), (1, 4));
        assert_eq!(ServerVersion(170_011).to_string(), "17.11");
    }
}
