import json, re, sys, unicodedata
GENRES = {g.strip() for g in """Classic, Literary Fiction, Science Fiction, Fantasy, Mystery, Crime, Thriller, Horror, Romance, Historical Fiction,
Adventure, Children's, Young Adult, Humor, Dystopian, Graphic Novel, Nonfiction, Biography, Memoir, History,
Science, Psychology, Philosophy, True Crime""".replace("\n", " ").split(",")}
role, path = sys.argv[2], sys.argv[3]
lst = {}
for l in open("/work/authoring/books/list.txt", encoding="utf-8"):
    k, t, d = [x.strip() for x in l.split("|")]
    lst[k] = (t, d)
def slug(t):
    t = unicodedata.normalize("NFKD", t).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", t).strip("-")
seen, errs, n = set(), 0, 0
for ln, line in enumerate(open(path, encoding="utf-8"), 1):
    if not line.strip(): continue
    n += 1
    def err(m):
        global errs; errs += 1; print(f"ERROR line {ln}: {m}")
    r = json.loads(line)
    k = r.get("key")
    if k not in lst: err(f"unknown key {k}"); continue
    if k in seen: err(f"duplicate key {k}")
    seen.add(k)
    if r.get("title") != lst[k][0]: err(f"title must be {lst[k][0]!r}")
    if r.get("unknown"): continue
    a = r["attributes"] if role == "full" else r
    y = a.get("year")
    if not isinstance(y, int): err("year must be an integer"); continue
    if not (isinstance(a.get("author"), list) and a["author"] and all(isinstance(x, str) and x.strip() for x in a["author"])):
        err("author must be a non-empty list of names")
    g = a.get("genres")
    if not (isinstance(g, list) and 1 <= len(g) <= 3 and all(x in GENRES for x in g)):
        err(f"genres must be 1-3 of the list, got {g}")
    if role == "full":
        if r.get("id") != f"{slug(r['title'])}-{y}": err(f"id must be {slug(r['title'])}-{y}")
        kw = a.get("keywords")
        if not (isinstance(kw, list) and len(kw) == 5 and all(x == x.lower() for x in kw)): err("keywords: exactly 5, lower case")
        d = r.get("description", "")
        if not 60 <= len(d) <= 260: err(f"description {len(d)} chars (60-260)")
        if r["title"].lower() in d.lower(): err("description repeats the title")
        if not r.get("meta", {}).get("author"): err("meta.author missing")
    elif not r.get("by"): err("'by' missing")
print(f"{n} rows, {errs} errors, {len(lst) - len(seen)} list books still to write")
