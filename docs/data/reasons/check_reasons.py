"""Self-check for reason authors: python3 check_reasons.py SHEET.jsonl YOUR_OUT.jsonl

Prints ERROR lines for rows that break the brief's mechanical rules, then a summary."""
import json, re, sys, unicodedata

def norm(s):
    s = unicodedata.normalize("NFKD", s)
    return "".join(c for c in s if not unicodedata.combining(c)).lower()

sheet = {r["key"]: r for r in map(json.loads, open(sys.argv[1], encoding="utf-8"))}
titles = set()
for line in open("/work/authoring/reasons/all_titles.txt", encoding="utf-8"):
    titles.add(line.rstrip("\n"))
people = set(l.rstrip("\n") for l in open("/work/authoring/reasons/all_people.txt", encoding="utf-8"))
PEOPLE_NORM_MAP = {norm(p).rstrip("."): p for p in people if len(p.split()) > 1}
PEOPLE_NORM = set(PEOPLE_NORM_MAP)
seen, errors, n = set(), 0, 0
for ln, line in enumerate(open(sys.argv[2], encoding="utf-8"), 1):
    if not line.strip():
        continue
    n += 1
    def err(msg):
        global errors
        errors += 1
        print(f"ERROR line {ln}: {msg}")
    try:
        r = json.loads(line)
    except Exception as e:
        err(f"not JSON ({e})"); continue
    if set(r) != {"key", "reason", "author"}:
        err(f"fields must be key, reason, author; got {sorted(r)}"); continue
    if r["key"] not in sheet:
        err(f"unknown key {r['key']}"); continue
    if r["key"] in seen:
        err(f"duplicate key {r['key']}")
    seen.add(r["key"])
    row, text = sheet[r["key"]], r["reason"].strip()
    item = row["item"]
    words = text.split()
    if not 8 <= len(words) <= 45:
        err(f"{len(words)} words (8-45)")
    if not re.search(r"[.!?]$", text):
        err("must end with . ! or ?")
    if len(re.findall(r"[.!?](\s|$)", re.sub(r"\b(Dr|Mr|Mrs|Ms|St|Jr|vs)\.", "", text))) > 2:
        err("more than two sentences")
    if any(c in text for c in "<>[]{}#|\n"):
        err("structural characters")
    own = set(item.get("director", []) + item.get("cast", []))
    low = norm(text)
    toks = re.findall(r"[\w'.-]+", low)
    grams = {" ".join(toks[i:i + n]).rstrip(".") for n in range(2, 5) for i in range(len(toks) - n + 1)}
    grams = {re.sub(r"'s$", "", g) for g in grams}
    for p in grams & PEOPLE_NORM:
        if PEOPLE_NORM_MAP[p] not in own:
            err(f"names {PEOPLE_NORM_MAP[p]!r}, who is not in this item's director/cast")
    allowed = {item["title"], *row["liked"]}
    convo = norm(" ".join(t["text"] for t in row["conversation"] if t["role"] == "user"))
    words = re.findall(r"\S+", text)
    cand = {" ".join(words[i:i + n]).rstrip(".,;:!?") for n in range(2, 9) for i in range(len(words) - n + 1)}
    for t in (cand & titles) - allowed:
        if len(t) >= 4 and norm(t) not in convo:
            err(f"names another title {t!r} (only this item, liked titles, or titles the user wrote)")
    for y in re.findall(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)", text):
        if item.get("year") and int(y) != item["year"]:
            err(f"year {y} is not this item's year {item['year']}")
    for d in re.findall(r"(?<!\d)(1[89]\d0|20\d0)s", text):
        if item.get("year") and int(d) != item["year"] // 10 * 10:
            err(f"decade {d}s does not match {item['year']}")
    m = re.search(r"directed by ([A-Z][\w.'-]*(?: [A-Z][\w.'-]*)*)", text)
    if m and not any(norm(m.group(1)) in norm(d) or norm(d) in norm(m.group(1)) for d in item.get("director", [])):
        err(f"'directed by {m.group(1)}' but director is {item.get('director')}")
print(f"{n} rows, {errors} errors, {len(sheet) - len(seen)} sheet rows still to write")
