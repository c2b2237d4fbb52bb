#!/usr/bin/env python3
"""Builds nodes/src/export/dicom_seg/codes.json: SNOMED CT codes for every VISTA3D class.

    make_seg_codes.py [LABELS_JSON] [OUT_JSON]

Defaults: nodes/src/vista3d/vista3d_labels.json (VISTA3D's class table, a copy of the
reference vista3d_labels.json) and nodes/src/export/dicom_seg/codes.json.

Every code number comes from pydicom's SNOMED CT dictionary (pydicom.sr.codedict.codes.SCT);
nothing is typed in by hand except the *keywords* of that dictionary in the alias tables
below, and the script fails if one of them is not there. For each class:

- `left ...` / `right ...` become the structure plus a laterality modifier (SCT Left 7771000 /
  Right 24028007), unless the dictionary has a lateral concept of its own (e.g. "Left common
  carotid artery"), which is then used as is;
- the remaining name is matched to a dictionary keyword in CamelCase ("inferior vena cava" ->
  InferiorVenaCava), else through ALIASES;
- lesions (tumour, cancer, mass, cyst, lesion) get the category Morphologically Altered
  Structure (SCT 49755003) and a lesion type (Neoplasm, Mass, Cyst, Lesion), with the organ as
  the anatomic region; everything else Anatomical Structure (SCT 123037004);
- classes with no good code get FALLBACK (category and type "Tissue", SCT 85756007, the
  generic code 3D Slicer also uses for unknown segments) and are printed.

Some codes are coarser than the class (ribs are "Rib" plus laterality without the rib number,
muscles without a concept of their own are "Skeletal muscle", vertebrae S1 and L6 are
"Vertebra"): the JSON says so in `note`.
"""
import json
import os
import re
import sys

from pydicom.sr.codedict import codes

SCT = codes.SCT
KEYS = set(SCT.dir())

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABELS = (
    sys.argv[1]
    if len(sys.argv) > 1
    else os.path.join(ROOT, "nodes/src/vista3d/vista3d_labels.json")
)
OUT = (
    sys.argv[2]
    if len(sys.argv) > 2
    else os.path.join(ROOT, "nodes/src/export/dicom_seg/codes.json")
)

# Category codes (DICOM CID 7150 meanings; the numbers are checked against pydicom's table).
CATEGORY = {
    "anatomy": ("123037004", "Anatomical Structure"),
    "lesion": ("49755003", "Morphologically Altered Structure"),
    "tissue": ("85756007", "Tissue"),
}

# Class name (laterality removed) -> SCT dictionary keyword, where CamelCase does not match.
ALIASES = {
    "bladder": "Bladder",
    "small bowel": "SmallIntestine",
    "portal vein and splenic vein": "PortalVein",
    "hepatic vessel": "BloodVessel",
    "gluteus maximus": "SkeletalMuscle",
    "gluteus medius": "SkeletalMuscle",
    "gluteus minimus": "SkeletalMuscle",
    "iliopsoas": "SkeletalMuscle",
    "vertebrae S1": "Vertebra",
    "vertebrae L6": "Vertebra",
    "lung upper lobe": "UpperLobeOfLung",
    "lung lower lobe": "LowerLobeOfLung",
    "lung middle lobe": "MiddleLobeOfRightLung",
    "iliac vena": "IliacVein",
    "clavicula": "Clavicle",
    "hip": "Ilium",
    "autochthon": "ErectorSpinaeMuscle",
    "atrial appendage": "LeftAuricularAppendage",
    "costal cartilages": "CostalCartilage",
    "thyroid gland": "Thyroid",
    "airway": "AirwayStructure",
}

# Names whose code is coarser than the name, or a deliberate approximation: shown in `note`.
NOTES = {
    "portal vein and splenic vein": "coded as the portal vein only",
    "hepatic vessel": "generic blood vessel; region liver",
    "hip": "hip bone coded as the ilium",
    "autochthon": "autochthonous back muscles coded as erector spinae",
    "gluteus maximus": "generic skeletal muscle: the muscle is not coded",
    "gluteus medius": "generic skeletal muscle: the muscle is not coded",
    "gluteus minimus": "generic skeletal muscle: the muscle is not coded",
    "iliopsoas": "generic skeletal muscle: the muscle is not coded",
    "vertebrae S1": "generic vertebra: no S1 vertebra concept in pydicom's SNOMED table",
    "vertebrae L6": "generic vertebra: no L6 (variant) concept in pydicom's SNOMED table",
}

# Lesion classes: name -> (lesion type keyword, region keyword or None).
LESIONS = {
    "lung tumor": ("Neoplasm", "Lung"),
    "pancreatic tumor": ("Neoplasm", "Pancreas"),
    "hepatic tumor": ("Neoplasm", "Liver"),
    "liver tumor": ("Neoplasm", "Liver"),
    "colon cancer primaries": ("Neoplasm", "Colon"),
    "kidney cyst": ("Cyst", "Kidney"),
    "kidney mass": ("Mass", "Kidney"),
    "bone lesion": ("Lesion", "Bone"),
}

# Names with no good code in the dictionary (they get FALLBACK).
NO_CODE = {
    "prostate or uterus": "two structures in one class",
}

# Regions of otherwise generic codes.
REGIONS = {"hepatic vessel": "Liver"}


def code(keyword):
    """{value, scheme, meaning} of a dictionary keyword; fails loudly when absent."""
    if keyword not in KEYS:
        raise SystemExit(f"make_seg_codes.py: {keyword!r} is not in pydicom's SCT table")
    c = getattr(SCT, keyword)
    return {"value": c.value, "scheme": c.scheme_designator, "meaning": c.meaning}


def by_value(value, meaning):
    """A code by number, checked to be in pydicom's table, with the given (CID) meaning."""
    if not any(getattr(SCT, k).value == value for k in KEYS):
        raise SystemExit(f"make_seg_codes.py: SCT {value} is not in pydicom's SCT table")
    return {"value": value, "scheme": "SCT", "meaning": meaning}


def camel(name):
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[ _-]+", name) if w)


def category(kind):
    return by_value(*CATEGORY[kind])


FALLBACK = {
    "category": category("tissue"),
    "type": by_value("85756007", "Tissue"),
    "note": "generic code: no specific SNOMED CT concept for this class",
}


def vertebra(rest):
    """'vertebrae L5' -> L5Vertebra."""
    m = re.fullmatch(r"vertebrae ([CTL]\d+)", rest)
    return f"{m.group(1)}Vertebra" if m else None


def entry(name):
    if name in NO_CODE:
        return None, NO_CODE[name]
    side = None
    rest = name
    m = re.fullmatch(r"(left|right) (.+)", name)
    if m:
        side, rest = m.group(1), m.group(2)
    # Lateral concepts of their own ("Left common carotid artery").
    if side and camel(name) in KEYS:
        return {"category": category("anatomy"), "type": code(camel(name))}, None
    if rest in LESIONS:
        kind, region = LESIONS[rest]
        e = {"category": category("lesion"), "type": code(kind)}
        if region:
            e["region"] = code(region)
            if side:
                e["region_modifier"] = code(side.capitalize())
        return e, None
    m = re.fullmatch(r"rib (\d+)", rest)
    if m:
        e = {"category": category("anatomy"), "type": code("Rib")}
        e["note"] = f"rib number {m.group(1)} is not coded"
    elif vertebra(rest) and vertebra(rest) in KEYS:
        e = {"category": category("anatomy"), "type": code(vertebra(rest))}
    elif rest in ALIASES:
        e = {"category": category("anatomy"), "type": code(ALIASES[rest])}
    elif camel(rest) in KEYS:
        e = {"category": category("anatomy"), "type": code(camel(rest))}
    else:
        return None, "no match in pydicom's SCT table"
    if rest in NOTES:
        e["note"] = NOTES[rest]
    if rest in REGIONS:
        e["region"] = code(REGIONS[rest])
    # A lateral concept already says the side (left atrial appendage, right middle lobe).
    if side and side not in e["type"]["meaning"].lower():
        e["type_modifier"] = code(side.capitalize())
    return e, None


def main():
    with open(LABELS) as f:
        table = json.load(f)["classes"]
    out = {}
    fell_back = []
    for cid in sorted(table, key=int):
        name = table[cid]
        if int(cid) == 0:
            continue
        e, why = entry(name)
        if e is None:
            e = dict(FALLBACK)
            e["note"] = f"fallback: {why}"
            fell_back.append((cid, name, why))
        out[name] = e
    doc = {
        "about": "SNOMED CT codes for DICOM SEG segments, by VISTA3D class name. Generated by "
        "scripts/oracles/make_seg_codes.py from pydicom's SCT dictionary; do not edit by hand.",
        "pydicom": __import__("pydicom").__version__,
        "fallback": FALLBACK,
        "classes": out,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {OUT}: {len(out)} classes, {len(fell_back)} with the fallback code")
    for cid, name, why in fell_back:
        print(f"  fallback: {cid} {name!r}: {why}")


if __name__ == "__main__":
    main()
