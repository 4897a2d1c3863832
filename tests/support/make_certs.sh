#!/usr/bin/env bash
# Makes a throwaway PKI for the TLS tests in DIR (idempotent):
#   ca.pem ca.key            the test CA
#   other-ca.pem             an unrelated CA (a "wrong CA" for failure tests)
#   server.pem server.key    signed by ca, names: localhost, 127.0.0.1 (not 127.0.0.2)
#   client-NAME.pem .key     client certificates (CN=NAME) for each NAME given after DIR
#   client-NAME.enc.key      the same key encrypted with the passphrase "keypass"
set -euo pipefail
dir=$1; shift
mkdir -p "$dir"; cd "$dir"
[ -s ca.pem ] && exit 0
q() { "$@" >/dev/null 2>&1; }
q openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=cdcd test CA" -keyout ca.key -out ca.pem
q openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=some other CA" -keyout other-ca.key -out other-ca.pem
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
q openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
q openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile server.ext -out server.pem
for name in "$@"; do
  printf 'extendedKeyUsage=clientAuth\n' > client.ext
  q openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "client-$name.key" -out "client-$name.csr"
  q openssl x509 -req -in "client-$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile client.ext -out "client-$name.pem"
  q openssl pkey -in "client-$name.key" -aes256 -passout pass:keypass -out "client-$name.enc.key"
done
chmod 644 ./*.pem ./*.key
