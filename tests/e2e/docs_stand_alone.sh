#!/usr/bin/env bash
# e2e.docs_stand_alone (no root, no build): the repository stands on its own (docs/design.md
# §10). No file in it may point at a path outside the clone (a sibling directory of the
# checkout, a contract or style file kept elsewhere, the machine it was written on) or cite a
# tracker's issue numbers: a user has only the clone, so such a reference leads nowhere.
# RFC sections and patent claims are cited by name and number instead.
#
# Files: those git tracks, plus untracked ones it does not ignore (so a new file is checked
# before it is committed); outside a git checkout, every file under the tree except build*/
# and third_party/lwip/upstream/ (lwIP's own source, unpacked by scripts/setup.sh). Binary
# files are skipped. Prints file:line:text for every hit and exits 1 if there is any.
set -euo pipefail

ROOT=${E2E_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$ROOT"

# The patterns are assembled from pieces so that this file does not match itself.
dot='\.'
patterns=(
  "${dot}${dot}/sha""red"                       # a sibling directory of the checkout
  "SP""EC${dot}md"                              # a contract file kept outside the repository
  "ST""YLE${dot}md"                             # a style guide kept outside the repository
  "/wo""rk/"                                    # an absolute path of the machine it was written on
  "see""ds/"                                    # the patent texts, kept outside the repository
  "[0-9]{3}_[0-9a-f]{16}${dot}txt"              # ... and their file names
  "\\bsee""ds? 0[0-9]{2}"                       # ... and their numbers, three digits
  "[Ii]ss""ues? #?[0-9]"                        # a tracker's numbers, also with '#' or "'s"
  "[Ii]ss""ue [0-9]"
)

# Each pattern must match an example of what it is for, or a broken pattern would pass all.
# The examples are split with "" like the patterns, for the same reason.
examples=(
  "see ../sha""red/x" "the contract (SP""EC.md)" "as ST""YLE.md says" "in /wo""rk/main"
  "from see""ds/a" "123""_0123456789abcdef.txt" "(see""d 004)" "iss""ue 4 item 6" "(Iss""ue 3, item 8)"
)
for i in "${!patterns[@]}"; do
  ex=${examples[$i]}
  if ! printf '%s\n' "$ex" | grep -qE -- "${patterns[$i]}"; then
    echo "FAIL: pattern ${patterns[$i]} does not match its example '$ex'" >&2
    exit 1
  fi
done

list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard
  else
    find . -type f -not -path './build*' -not -path './third_party/lwip/upstream/*' \
      -not -path './.git/*' -printf '%P\0'
  fi
}

args=()
for p in "${patterns[@]}"; do args+=(-e "$p"); done

# -I: skip binary files; -s: a file git lists but that was deleted is not an error.
hits=$(list_files | xargs -0 -r grep -nIsE "${args[@]}" -- || true)
if [ -n "$hits" ]; then
  printf '%s\n' "$hits"
  echo "FAIL: $(printf '%s\n' "$hits" | wc -l) line(s) above point outside the repository or cite" \
    "issue numbers; cite the RFC section, the patent and claim (docs/design.md §3), or" \
    "docs/design.md instead" >&2
  exit 1
fi
echo "PASS: no file points outside the repository or cites an issue number ($(list_files | tr -cd '\0' | wc -c) files)"
