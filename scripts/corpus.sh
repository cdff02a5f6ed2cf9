#!/usr/bin/env bash
# corpus.sh OUT.txt: the pre-training text for the quick start.
# Biomedical text from ../shared/data when it is there (titles and abstracts
# of ncbi-disease, full texts of craft-pmc-oa); otherwise the licence texts
# every Debian system has in /usr/share/common-licenses, and it says so.
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")/.." && pwd)
data=${MSW_DATA:-$here/../shared/data}
if [ -d "$data/ncbi-disease/original-data" ] && [ -d "$data/craft-pmc-oa/articles" ]; then
	# PubTator lines "PMID|t|title" and "PMID|a|abstract"; mention lines skipped.
	find "$data/ncbi-disease/original-data" -name '*.txt' | sort |
		xargs cat | grep -E '^[0-9]+\|[ta]\|' | cut -d'|' -f3- > "$out"
	find "$data/craft-pmc-oa/articles" -name '*.txt' | sort | xargs cat >> "$out"
	echo "corpus: biomedical text from $data ($(wc -c < "$out") bytes)"
else
	cat /usr/share/common-licenses/* > "$out"
	echo "corpus: $data not found; using /usr/share/common-licenses instead ($(wc -c < "$out") bytes)"
fi
