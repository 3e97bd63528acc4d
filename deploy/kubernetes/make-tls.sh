#!/bin/sh
# Makes what deploy/kubernetes needs to run with TLS and API tokens, with
# openssl, into DIR (files 0600): a CA (ca.crt, ca.key — keep the key
# offline), the collector's certificate for its Service names and for
# localhost (kubectl port-forward) (tls.crt, tls.key), and two API tokens (admin.token, prometheus.token) with the
# tokens.yaml that holds their SHA-256 only. It prints the kubectl commands
# that make the Secrets from them; it changes nothing in a cluster itself.
#
#   deploy/kubernetes/make-tls.sh DIR [NAMESPACE]
#
# cert-manager users make the Secret flowlens-collector-tls with a
# Certificate instead (docs/kubernetes.md, "TLS").
set -eu
dir=${1:?usage: make-tls.sh DIR [NAMESPACE]}
ns=${2:-flowlens}
umask 077
mkdir -p "$dir"
cd "$dir"

openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout ca.key -out ca.crt -days 3650 -subj "/CN=flowlens CA" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout tls.key -out tls.csr -subj "/CN=flowlens-collector" 2>/dev/null
cat > tls.ext <<EXT
basicConstraints=CA:FALSE
keyUsage=digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:flowlens-collector.$ns.svc,DNS:flowlens-collector.$ns.svc.cluster.local,DNS:flowlens-collector,DNS:localhost,IP:127.0.0.1
EXT
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -out tls.crt -days 365 -extfile tls.ext 2>/dev/null
rm -f tls.csr tls.ext ca.srl

sha256() { printf %s "$1" | openssl dgst -sha256 -r | cut -d' ' -f1; }
admin=$(openssl rand -hex 32)
prometheus=$(openssl rand -hex 32)
printf '%s\n' "$admin" > admin.token
printf '%s\n' "$prometheus" > prometheus.token
cat > tokens.yaml <<YAML
# API tokens of the collector (docs/security.md): SHA-256 only.
tokens:
  - name: admin
    sha256: $(sha256 "$admin")
    rights: [admin]
  - name: prometheus
    sha256: $(sha256 "$prometheus")
    rights: [metrics]
YAML

cat <<CMD
Made in $dir. Create the Secrets, then apply deploy/kubernetes:
  kubectl create namespace $ns --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n $ns create secret generic flowlens-collector-tls --from-file=tls.crt=$dir/tls.crt --from-file=tls.key=$dir/tls.key --from-file=ca.crt=$dir/ca.crt
  kubectl -n $ns create secret generic flowlens-api-tokens --from-file=tokens.yaml=$dir/tokens.yaml
  kubectl -n $ns create secret generic flowlens-prometheus-token --from-file=token=$dir/prometheus.token
CMD
