"""Benchmark helper: digestbot with one speed trick taken out, as a patched copy of the package.

Each variant is a list of (file, text, replacement) edits to a copy of `digestbot/`, so the
code the project ships carries no switches for benchmarks. An edit whose text is not found
stops the bench: the variant no longer matches the code and must be written anew.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The email package's own MIME classes and generator, instead of compose.mime's writer.
_STOCK_MIME = """

def multipart_alternative(headers, boundary, text, html):  # type: ignore[no-untyped-def]
    import io
    from email import policy
    from email.generator import BytesGenerator
    from email.mime.multipart import MIMEMultipart
    from email.mime.nonmultipart import MIMENonMultipart

    message = MIMEMultipart("alternative", boundary=boundary)
    for name, value in headers:
        message[name] = value
    for body, subtype in ((text, "plain"), (html, "html")):
        part = MIMENonMultipart("text", subtype, charset="utf-8")
        del part["MIME-Version"]
        part["Content-Transfer-Encoding"] = encoding = transfer_encoding(body)
        if encoding == "quoted-printable":
            part.set_payload(quopri.encodestring(_lf(body)).decode("ascii"))
        else:
            part.set_payload(body)
        message.attach(part)
    out = io.BytesIO()
    stock = policy.compat32.clone(linesep="\\r\\n", mangle_from_=False)
    BytesGenerator(out, policy=stock).flatten(message)
    return out.getvalue()
"""

PIPELINE = "digestbot/delivery/pipeline.py"
VARIANTS: dict[str, list[tuple[str, str, str]]] = {
    "render processes": [],  # DIGESTBOT_RENDER_PROCESSES=0: a setting, no edit
    "chunking": [
        (PIPELINE, "FIRST_CHUNK = 8 ", "FIRST_CHUNK = 1_000_000 "),
        (PIPELINE, "CHUNK = 100 ", "CHUNK = 1_000_000 "),
        (PIPELINE, "SPREAD_OVER = FIRST_CHUNK + CHUNK", "SPREAD_OVER = 108"),
    ],
    "templates styled when compiled": [
        (
            "digestbot/compose/render.py",
            'env.globals["inline_css"] = templates_dir is not None if inline_css is None else'
            " inline_css",
            'env.globals["inline_css"] = True',
        )
    ],
    # Every cache of presenting and highlighting a digest's papers off (maxsize 0).
    "caches": [
        (file, "@lru_cache(maxsize=", "@lru_cache(maxsize=0 * ")
        for file in ("digestbot/compose/words.py", "digestbot/rules/highlight.py")
    ],
    "own MIME writer": [("digestbot/compose/mime.py", "\ndef _lf(", _STOCK_MIME + "\n\ndef _lf(")],
}


def patched_copy(name: str, folder: Path) -> Path:
    """A copy of the package and its templates in `folder` with variant `name`'s edits made;
    the folder to put first on PYTHONPATH."""
    shutil.copytree(
        ROOT / "digestbot", folder / "digestbot", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "templates", folder / "templates")
    shutil.copyfile(ROOT / "subscriptions.example.yaml", folder / "subscriptions.example.yaml")
    for file, text, replacement in VARIANTS[name]:
        path = folder / file
        source = path.read_text()
        if text not in source:
            raise SystemExit(f"variant {name!r}: {text!r} is no longer in {file}; rewrite it")
        path.write_text(source.replace(text, replacement))
    return folder
