-- Every PostgreSQL type of the value table in docs/envelope.md, for the Debezium-encoding comparison
-- (tests/debezium_encoding.rs; fixtures captured with tests/debezium/capture_types.py).
-- Row 1 typical values, row 2 NULLs, row 3 edge values; rows 11-13 repeat them as streamed
-- inserts after the snapshot, because Debezium reads snapshot rows over JDBC and streamed rows
-- from pgoutput, and the two paths can differ.
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE all_types (
  id int PRIMARY KEY,
  c_smallint smallint, c_integer integer, c_bigint bigint, c_oid oid,
  c_real real, c_double double precision,
  c_numeric numeric(10,2), c_numeric_free numeric,
  c_bool boolean,
  c_text text, c_varchar varchar(20), c_char char(3), c_name name,
  c_uuid uuid, c_enum mood, c_money money, c_inet inet, c_cidr cidr, c_macaddr macaddr, c_xml xml,
  c_bit1 bit(1), c_bit bit(4), c_varbit varbit(8),
  c_point point, c_range int4range,
  c_bytea bytea, c_json json, c_jsonb jsonb,
  c_date date, c_timestamp timestamp, c_timestamp3 timestamp(3), c_timestamptz timestamptz,
  c_time time, c_time3 time(3), c_timetz timetz, c_interval interval,
  c_int_array int[], c_text_array text[], c_domain posint
);
CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (b, a));
CREATE TABLE all_types_src (LIKE all_types);
INSERT INTO all_types_src VALUES
 (1, -32768, 2147483647, 9223372036854775807, 4000000000, 1.5, -2.25e100, 12345678.91,
  3.14159265358979323846, true, 'tëxt "q"', 'varchar', 'ab', 'nm',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', 12.34, '192.168.0.1/24', '10.0.0.0/8',
  '08:00:2b:01:02:03', '<a>x</a>', B'1', B'1010', B'101', '(1.5,-2)', '[1,10)', '\x00ff10',
  '{"a": [1, 2]}', '{"b": 1, "a": null}', '2024-02-29', '2024-02-29 13:14:15.123456',
  '2024-02-29 13:14:15.123', '2024-02-29 13:14:15.5+02', '13:14:15.25', '13:14:15.123',
  '13:14:15+02', '1 year 2 months 3 days 04:05:06.5', '{1,2,NULL}', '{a,"b c"}', 7),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 0, -1, -9223372036854775808, 0, 'NaN', '-Infinity', -0.5, 'NaN', false, '', ' ', 'a', '',
  '00000000-0000-0000-0000-000000000000', 'sad', -0.01, '::1', '2001:db8::/32',
  'ff:ff:ff:ff:ff:ff', '<r/>', B'0', B'0000', B'', '(0,0)', 'empty', '\x', '[]', '{}',
  '1970-01-01', '1969-12-31 23:59:59.999999', '1900-01-01 00:00:00', '1970-01-01 00:00:00+00',
  '00:00:00', '23:59:59.999', '23:59:59.999999-05:30', '-1 days -00:00:01', '{}', '{{a,b},{c,d}}', 1);
INSERT INTO all_types SELECT * FROM all_types_src;
INSERT INTO pairs VALUES (1, 'x', 10), (2, 'x', 20);
