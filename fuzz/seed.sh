#!/usr/bin/env bash
# Fills corpus/<target>/ with the real captured bytes the mutation test also starts from.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/pgoutput corpus/binlog corpus/values
cp ../src/source/mysql/testdata/mariadb_10_11_types.binlog corpus/binlog/
# Each captured pgoutput message framed by a big-endian u16 length, and the whole session.
python3 - <<'PY'
import pathlib
lines = [l.split('|')[1] for l in pathlib.Path('../src/source/postgres/testdata/pgoutput_v1_pg15.txt').read_text().splitlines()
         if l and not l.startswith('#')]
msgs = [bytes.fromhex(h) for h in lines]
frame = lambda m: len(m).to_bytes(2, 'big') + m
pathlib.Path('corpus/pgoutput/session').write_bytes(b''.join(frame(m) for m in msgs))
for i, m in enumerate(msgs):
    pathlib.Path(f'corpus/pgoutput/msg{i:02}').write_bytes(frame(m))
for mode in range(3):
    for kind in range(18):
        for j, t in enumerate([b'123', b'-1.5e+300', b'{1,{2,NULL},"a"}', b'2024-02-29 13:14:15.5+05:30', b'\\x00ff10']):
            pathlib.Path(f'corpus/values/m{mode}k{kind}t{j}').write_bytes(bytes([mode, kind * 7, kind]) + t)
PY
echo "corpus ready: $(find corpus -type f | wc -l) files"
