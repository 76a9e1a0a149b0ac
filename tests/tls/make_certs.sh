#!/bin/sh
# Throwaway PKI for the TLS tests, made with the openssl CLI in folder $1 (EC P-256 keys, 2 days):
#   ca            the CA the proxy trusts (tls_ca_file)
#   server        the proxy's certificate: CN and subjectAltName 127.0.0.1 (+ DNS localhost)
#   phone         a phone's certificate from ca, CN 127.0.0.1 (sofia-sip matches DNS names and the CN, not IP
#                 subjectAltNames), also its client certificate
#   wrongname     from ca, but for wrong.example: the proxy must not accept it as 127.0.0.1's server certificate
#   stranger      client/server certificate from otherca, a CA the proxy does not trust
# and sofia-sip certificate folders <name>.d/ (agent.pem = certificate + key, cafile.pem) for the phones.
set -eu
d=$1
cd "$d"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
mkca() {
    key "$1"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
mkcert() { # name ca cn subjectAltName
    key "$1"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$3" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' \
        "$4" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 -out "$1.pem" \
        -extfile "$1.ext" 2>/dev/null
    mkdir -p "$1.d"
    chmod 700 "$1.d"
    cat "$1.pem" "$1.key" >"$1.d/agent.pem"
    cp "$2.pem" "$1.d/cafile.pem"
}
mkca ca "Parkway Test CA"
mkca otherca "Other Test CA"
mkcert server ca 127.0.0.1 "IP:127.0.0.1,DNS:localhost"
mkcert phone ca 127.0.0.1 "IP:127.0.0.1"
mkcert wrongname ca wrong.example "DNS:wrong.example"
mkcert stranger otherca 127.0.0.1 "IP:127.0.0.1"
