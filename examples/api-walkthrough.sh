#!/usr/bin/env bash
# A walk through the JSON API with curl and jq: sign in, create a project, upload evidence, review it, fire
# transitions, read the audit trail.
#
#   bash examples/api-walkthrough.sh
#
# starts a fresh service of its own (a SQLite file in a temporary folder, mails as .eml files), creates an
# officer and a council account with `incubator user add`, walks one region from `invited` to `subsidy`, and
# stops the service. To walk against a service already running instead, give its address and two accounts:
#
#   BASE_URL=http://127.0.0.1:8080 OFFICER_EMAIL=… OFFICER_PASSWORD=… \
#   COUNCIL_EMAIL=… COUNCIL_PASSWORD=… REGION=53 bash examples/api-walkthrough.sh
#
# (the region must not have a project yet). INCUBATOR names the `incubator` program to use (default: built
# and run through cargo).
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="${REGION:-53}"
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "this walk-through needs $tool" >&2; exit 1; }
done

if [ -z "${BASE_URL:-}" ]; then
  if [ -z "${INCUBATOR:-}" ]; then
    cargo build -q --bin incubator
    INCUBATOR="${CARGO_TARGET_DIR:-target}/debug/incubator"
  fi
  DATA="$(mktemp -d)"
  SERVER_PID=""
  trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DATA"' EXIT
  OFFICER_EMAIL=officer@walkthrough.example OFFICER_PASSWORD="granit rose et goémon"
  COUNCIL_EMAIL=council@walkthrough.example COUNCIL_PASSWORD="marée haute à saint-malo"
  unset DATABASE_URL # the walk-through's own SQLite file, never a database of yours
  echo "$OFFICER_PASSWORD" | "$INCUBATOR" --data-dir "$DATA" user add --email "$OFFICER_EMAIL" \
    --name "Chargée de mission" --role officer --password-stdin >/dev/null
  echo "$COUNCIL_PASSWORD" | "$INCUBATOR" --data-dir "$DATA" user add --email "$COUNCIL_EMAIL" \
    --name "Conseil régional" --role council --region "$REGION" --password-stdin >/dev/null
  "$INCUBATOR" --data-dir "$DATA" serve --bind 127.0.0.1:0 >"$DATA/serve.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    BASE_URL="$(sed -n 's|^csirt-incubator is listening on \(http://[^ ]*\)/$|\1|p' "$DATA/serve.log")"
    [ -n "$BASE_URL" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$DATA/serve.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$BASE_URL" ] || { echo "the service did not start" >&2; cat "$DATA/serve.log" >&2; exit 1; }
  echo "# a fresh service is listening on $BASE_URL"
fi
API="$BASE_URL/api/v1"

step() { printf '\n## %s\n' "$*"; }

# call METHOD PATH TOKEN [curl args…]: prints the response body; fails loudly on an HTTP error, showing the
# problem document the API answered with.
call() {
  local method=$1 path=$2 token=$3
  shift 3
  local body status
  body="$(curl -sS -X "$method" "$API$path" -H "Authorization: Bearer $token" -w '\n%{http_code}' "$@")"
  status="${body##*$'\n'}"
  body="${body%$'\n'*}"
  if [ "$status" -ge 400 ]; then
    echo "$method $path → HTTP $status" >&2
    echo "$body" | jq . >&2 || echo "$body" >&2
    exit 1
  fi
  printf '%s' "$body"
}

sign_in() {
  curl -sS --fail-with-body "$API/auth/token" -H 'Content-Type: application/json' \
    -d "$(jq -n --arg e "$1" --arg p "$2" '{email: $e, password: $p}')" | jq -r .token
}

# fire PROJECT TOKEN TRANSITION [COMMENT]: fires at the project's current version (409 if someone was faster).
fire() {
  local version
  version="$(call GET "/projects/$1" "$2" | jq .version)"
  call POST "/projects/$1/transitions" "$2" -H 'Content-Type: application/json' \
    -d "$(jq -n --arg t "$3" --argjson v "$version" --arg c "${4:-}" \
      '{transition: $t, expected_version: $v, comment: (if $c == "" then null else $c end)}')" |
    jq -r '"→ \(.state) (version \(.version))"'
}

# upload PROJECT TOKEN REQUIREMENT: a small PDF as the evidence of REQUIREMENT; prints the document's id.
upload() {
  local file
  file="$(mktemp --suffix .pdf)"
  printf '%%PDF-1.4\n%% Pièce justificative : %s\n%%%%EOF\n' "$3" >"$file"
  call POST "/projects/$1/documents" "$2" -F "requirement=$3" -F "file=@$file;type=application/pdf;filename=$3.pdf" | jq -r .id
  rm -f "$file"
}

step "Sign in: one bearer token per account"
OFFICER="$(sign_in "$OFFICER_EMAIL" "$OFFICER_PASSWORD")"
COUNCIL="$(sign_in "$COUNCIL_EMAIL" "$COUNCIL_PASSWORD")"
call GET /me "$COUNCIL" | jq -c '{email, role, region_code}'

step "The officer creates the region's project"
PROJECT="$(call POST /projects "$OFFICER" -H 'Content-Type: application/json' \
  -d "$(jq -n --arg r "$REGION" '{region_code: $r, workflow: "csirt-incubation"}')" | jq .id)"
call GET "/projects/$PROJECT" "$COUNCIL" | jq -c '{id, region_code, state, version, deadlines}'

step "The council answers ANSSI's letter; the officer opens the project identification"
fire "$PROJECT" "$COUNCIL" express_interest
fire "$PROJECT" "$OFFICER" open_identification

step "What the council still has to provide, and what blocks the next step"
call GET "/projects/$PROJECT" "$COUNCIL" | jq -c '[.requirements[] | select(.status != "accepted") | .key]'
call GET "/projects/$PROJECT" "$OFFICER" |
  jq -r '.transitions[] | select(.id == "retain_project") | .unmet[] | "  unmet: \(.code) — \(.fr)"'

step "A rejected document: the officer says why, the council sees it on the requirement"
document="$(upload "$PROJECT" "$COUNCIL" council_backed)"
call POST "/documents/$document/review" "$OFFICER" -H 'Content-Type: application/json' \
  -d '{"decision": "rejected", "comment": "La délibération transmise n'"'"'est pas signée."}' |
  jq -c '{requirement: .document.requirement, status: .requirement_status}'

step "A correction: the officer asks for it by a day and pauses the stage's clock; the next upload answers it"
document="$(upload "$PROJECT" "$COUNCIL" legal_status)"
call POST "/documents/$document/review" "$OFFICER" -H 'Content-Type: application/json' \
  -d "$(jq -n --arg d "$(date -u -d '+14 days' +%F)" '{decision: "correction_requested", kind: "incomplete",
        due_on: $d, pause_stage_clock: true, comment: "Les statuts transmis ne sont pas signés."}')" |
  jq -c '{requirement: .document.requirement, status: .requirement_status}'
call GET "/projects/$PROJECT" "$COUNCIL" |
  jq -c '.requirements[] | select(.key == "legal_status") | {status, correction: .correction | {kind, due_on}}'

step "The council uploads the evidence of the seven eligibility criteria; the officer accepts each"
for requirement in council_backed regional_perimeter minimum_services legal_status own_staff \
  autonomous_accounting intercert_commitment; do
  document="$(upload "$PROJECT" "$COUNCIL" "$requirement")"
  call POST "/documents/$document/review" "$OFFICER" -H 'Content-Type: application/json' \
    -d '{"decision": "accepted", "comment": "Conforme."}' |
    jq -r --arg r "$requirement" '"  \($r): \(.requirement_status)"'
done

step "The officer retains the project"
fire "$PROJECT" "$OFFICER" retain_project

step "The legal structure: a typed field, then its evidence"
call PATCH "/projects/$PROJECT/fields" "$OFFICER" -H 'Content-Type: application/json' \
  -d '{"legal_form": "gip"}' | jq -c .fields
document="$(upload "$PROJECT" "$COUNCIL" registration_proof)"
call POST "/documents/$document/review" "$OFFICER" -H 'Content-Type: application/json' \
  -d '{"decision": "accepted"}' >/dev/null
fire "$PROJECT" "$OFFICER" record_legal_structure

step "The documents, and the audit trail (each event chained to the one before)"
call GET "/projects/$PROJECT/documents" "$OFFICER" | jq -r '.[] | "  \(.requirement): \(.filename) \(.size) bytes, \(.status)"'
call GET "/projects/$PROJECT/events" "$OFFICER" |
  jq -r '.[] | "  #\(.seq) \(.at) \(.actor) \(.transition // .kind)\(if .to_state then " \(.from_state) → \(.to_state)" else "" end)  \(.hash[:12])…"'

step "Done: project $PROJECT is at $(call GET "/projects/$PROJECT" "$OFFICER" | jq -r .state)"
