"""`wholedoc sample [OUT]`: write a small sample PDF (a few pages with headings and facts) to try the service on."""

PAGES = [
    ("wholedoc: a sample report",
     "This sample document exists so that `wholedoc summarize sample.pdf` has something to read. "
     "It describes a fictional company, Northwind Lighthouses, over four pages."),
    ("1. Revenue",
     "Northwind Lighthouses reported revenue of 41.2 million euros for 2025, up 12 percent from 36.8 million "
     "in 2024. Maintenance contracts grew fastest, by 23 percent, while new installations were flat."),
    ("2. Operations",
     "The company operates 118 lighthouses on three coasts. Average downtime fell from 9.1 to 6.4 hours per "
     "lighthouse per year after the switch to solar batteries, completed in March 2025."),
    ("3. Risks and outlook",
     "The main risk is the price of replacement lenses, which rose 30 percent. Management expects revenue of "
     "44 to 46 million euros in 2026 and plans to open a fourth coastal depot in Tromsø."),
]


def register(subparsers) -> None:
    p = subparsers.add_parser("sample", help="write a small sample PDF to try `wholedoc summarize` on")
    p.add_argument("out", nargs="?", default="sample.pdf", help="where to write it (default: %(default)s)")
    p.set_defaults(func=_run)


def write_sample(out: str) -> None:
    import pymupdf

    doc = pymupdf.open()
    for title, body in PAGES:
        page = doc.new_page()
        page.insert_text((72, 80), title, fontsize=18)
        page.insert_textbox(pymupdf.Rect(72, 110, 540, 760), body, fontsize=11)
    doc.set_metadata({"title": "Northwind Lighthouses: annual report (sample)", "author": "wholedoc"})
    doc.save(out)


def _run(args) -> int:
    write_sample(args.out)
    print(f"wrote {args.out} ({len(PAGES)} pages); try: wholedoc summarize {args.out}")
    return 0
