#!/bin/sh
# A throwaway CA for the admin TLS tests, made with the openssl CLI in DIR:
#   ca.pem/ca.key            the CA (P-256, valid 2 days)
#   server.pem/server.key    the admin API's certificate: subjectAltName IP 127.0.0.1, ::1 and DNS localhost
#   client.pem/client.key    a client certificate (admin.tls_ca_file tests)
#   other-ca.pem             a CA that signed none of them
# usage: make_test_ca.sh DIR
set -eu
dir=$1
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
leaf() { # name CN extensions
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days 2 \
    -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca "parkway test CA"
ca other-ca "parkway other CA"
leaf server 127.0.0.1 "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
extendedKeyUsage=serverAuth
basicConstraints=CA:FALSE"
leaf client parkctl "extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
chmod 600 ./*.key
