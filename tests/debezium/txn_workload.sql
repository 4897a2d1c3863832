-- One source transaction per line: T1-T4 transfers, T5 on a table that is not captured, T6 autocommit.
-- Run by tests/debezium/capture_txn_metadata.py (real Debezium) and tests/transaction_metadata.rs (cdcd).
BEGIN; UPDATE accounts SET balance=balance-10 WHERE id=1; UPDATE accounts SET balance=balance+10 WHERE id=2; INSERT INTO transfers VALUES (1,10); COMMIT;
BEGIN; UPDATE accounts SET balance=balance-5 WHERE id=3; UPDATE accounts SET balance=balance+5 WHERE id=4; COMMIT;
INSERT INTO transfers VALUES (2,7);
BEGIN; DELETE FROM transfers WHERE id=2; COMMIT;
BEGIN; INSERT INTO other VALUES (1); COMMIT;
INSERT INTO transfers VALUES (3,1);
