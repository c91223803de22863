#!/bin/bash
# Cross-check of `ragkv bench load`: ghz (go install github.com/bojand/ghz/cmd/ghz@v0.121.0)
# drives Lookup against a `ragkv serve` process with TLS and a bearer token, 64 concurrent
# calls for $DUR (default 30s), and prints count, rps, p50/p99 (ms) and the status codes.
#   RAGKV=bin/ragkv deploy/bench/ghz-lookup.sh
set -euo pipefail
RAGKV=${RAGKV:-ragkv}
GHZ=${GHZ:-$(go env GOPATH)/bin/ghz}
W=$(mktemp -d)
trap 'kill $SPID 2>/dev/null; rm -rf "$W"' EXIT
cd "$W"
"$RAGKV" tls init --dir tls --hosts 127.0.0.1 >/dev/null
TOK=ghz-token-0123456789
printf 'identities:\n  - name: ghz\n    role: writer\n    token_sha256: %s\n    namespaces: ["tenant-0"]\n' "$("$RAGKV" auth hash-token $TOK)" > auth.yaml
"$RAGKV" serve --data-dir data --listen 127.0.0.1:0 --admin-listen "" --openai-listen "" --log-level warn \
  --tls-cert tls/server.pem --tls-key tls/server.key --auth-file auth.yaml > serve.out 2> serve.err &
SPID=$!
for _ in $(seq 100); do grep -q "ragkv serving" serve.out 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^ragkv serving grpc=\([^ ]*\).*/\1/p' serve.out)
KEY=$("$RAGKV" cache put --addr "$ADDR" --tls-ca tls/ca.pem --token $TOK --namespace tenant-0 --weights-digest sha256:ghz --json |
  python3 -c "import json,sys;print(json.load(sys.stdin)['key'])")
B64=$(python3 -c "import base64;print(base64.b64encode(bytes.fromhex('$KEY')).decode())")
MD="{\"authorization\":\"Bearer $TOK\"}"
"$GHZ" --cacert tls/ca.pem --cname 127.0.0.1 --call ragkv.v1.ChunkCache.Lookup \
  -d "{\"namespace\":\"tenant-0\",\"keys\":[\"$B64\"]}" -m "$MD" --reflect-metadata "$MD" \
  -c 64 -z "${DUR:-30s}" --format json "$ADDR" > ghz.json
python3 -c "
import json;d=json.load(open('ghz.json'))
lat={p['percentage']:p['latency']/1e6 for p in d['latencyDistribution']}
print(json.dumps({'count':d['count'],'rps':d['rps'],'p50_ms':lat.get(50),'p99_ms':lat.get(99),'status':d.get('statusCodeDistribution')}))"
