-- Every MySQL type of the value table in docs/mysql.md, for tests/debezium_encoding.rs and
-- tests/debezium/capture_mysql_types.py (database `dbzm`). Rows 1-3 are snapshot rows; the test
-- streams them again as ids 11-13 (INSERT ... SELECT id + 10).
SET SESSION sql_mode = '';
SET SESSION time_zone = '+00:00';
CREATE TABLE all_types (
  id int unsigned PRIMARY KEY,
  c_tinyint tinyint, c_tinyint_u tinyint unsigned, c_smallint smallint, c_smallint_u smallint unsigned,
  c_mediumint mediumint, c_mediumint_u mediumint unsigned, c_int int NOT NULL, c_int_u int unsigned,
  c_bigint bigint, c_bigint_u bigint unsigned,
  c_decimal decimal(10,2), c_decimal0 decimal(20,0), c_float float, c_double double,
  c_bit1 bit(1), c_bit bit(10), c_year year,
  c_date date, c_date_nn date NOT NULL, c_datetime datetime, c_datetime3 datetime(3), c_datetime6 datetime(6),
  c_timestamp timestamp NULL, c_timestamp3 timestamp(3) NULL, c_time time, c_time6 time(6),
  c_char char(3), c_varchar varchar(20), c_latin1 varchar(10) CHARACTER SET latin1, c_text text, c_longtext longtext,
  c_binary binary(2), c_varbinary varbinary(4), c_blob blob,
  c_enum enum('a','b','c'), c_set set('x','y','z'), c_json json,
  c_geometry geometry NULL, c_point point NULL, c_vector vector(3)
);
INSERT INTO all_types VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
  -12.34, 12345678901234567890, 1.5, 2.25, b'1', b'1000000001', 2024,
  '2024-02-29', '2024-02-29', '2024-02-29 13:14:15', '2024-02-29 13:14:15.123', '2024-02-29 13:14:15.123456',
  '2024-01-02 03:04:05', '2024-01-02 03:04:05.123', '-838:59:59', '13:14:15.25',
  'ab', 'héllo ✓', 'héllo', 'long text', 'longer text',
  x'00ff', x'01', x'deadbeef', 'b', 'x,z', '{"k": [1, null], "s": "v"}',
  ST_GeomFromText('POINT(1 2)'), ST_GeomFromText('POINT(3 4)', 4326), STRING_TO_VECTOR('[1.5,2,-3.25]')),
 (2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, b'0', b'0', 1901,
  '0000-00-00', '0000-00-00', '0000-00-00 00:00:00', '1970-01-01 00:00:00.000', '1999-12-31 23:59:59.999999',
  '1970-01-01 00:00:01', '2038-01-19 03:14:07.999', '00:00:00', '838:59:59.000000',
  '', '', '', '', '',
  x'0000', x'', x'', 'a', '', '[]',
  NULL, NULL, STRING_TO_VECTOR('[0,0,0]')),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, 7, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, '2000-01-01', NULL, NULL, NULL,
  NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL);
