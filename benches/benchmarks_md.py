"""Rewrites one level-2 section of BENCHMARKS.md, for the scripts that write one each."""

HEADER = "# Benchmarks\n\nFigures measured on our own machines; each section is rewritten by its script.\n"


def replace_section(md_path, heading, section):
    """Puts `section` (starting with `## heading`) in place of the section of that heading
    in the file at `md_path` (up to the next level-2 heading or the end), or at the end
    when there is none; makes the file when it is missing."""
    import re

    try:
        with open(md_path) as f:
            text = f.read()
    except FileNotFoundError:
        text = HEADER
    pattern = re.compile(r"^## " + re.escape(heading) + r"[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    text = text.rstrip("\n") + "\n"
    with open(md_path, "w") as f:
        f.write(text)
