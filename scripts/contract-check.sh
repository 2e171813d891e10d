#!/usr/bin/env bash
# Contract checks, as CI runs them:
#  1. buf lint (STANDARD) is clean;
#  2. buf breaking (FILE) finds no break against the contract at the previous commit;
#  3. gen/ is exactly what `buf generate` makes from proto/.
set -euo pipefail
cd "$(dirname "$0")/.."
buf=./node_modules/.bin/buf

echo "contract: buf lint"
$buf lint

prev=${HERALD_CONTRACT_BASE:-HEAD~1}
if git rev-parse --verify --quiet "$prev^{commit}" >/dev/null && git cat-file -e "$prev:buf.yaml" 2>/dev/null; then
  echo "contract: buf breaking against $prev"
  $buf breaking --against ".git#ref=$(git rev-parse "$prev")"
else
  echo "contract: no contract at $prev, nothing to compare for breaking changes"
fi

echo "contract: gen/ matches buf generate"
$buf generate
if [ -n "$(git status --porcelain -- gen)" ]; then
  git status --porcelain -- gen
  echo "contract: gen/ differs from what 'buf generate' makes from proto/: run 'npm run generate' and commit" >&2
  exit 1
fi
