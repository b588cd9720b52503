"""Issue 17: a successful `manage.py train` prints a short, readable log.

Before: about 1,770 coremltools INFO lines, coremltools' progress bars inside the command's own, "Failed to
load _MLModelProxy", the native converter's and LiteRT's stderr lines, and MediaPipe's
`MetadataWriter.__del__` traceback when the process exits. The nights that check it, each with the progress
bar as an operator runs it: test_pipeline.py's fourth (every variant and Core ML) and test_small_data.py's
first (the cross-validated head); the exit traceback is test_train_log.py's.
"""

NOISE = ("Running MIL", "Converting TF Frontend", "passes/s", "ops/s", "Failed to load _ML", "MetadataWriter.__del__",
         "fully_quantize", "XNNPACK", "has not been tested with coremltools", "contains input name(s)",
         "Exception ignored")


def assert_a_short_log(out: str, err: str, records, *, coreml: bool) -> None:
    """What a night printed (stdout, stderr) and logged: none of the noise, under 60 lines, and Core ML's one
    line when it converted one."""
    printed = out + err
    for text in NOISE:
        assert text not in printed, text
    assert not [r for r in records if r.name.startswith("coremltools")]
    assert ("coreml: " in out) == coreml
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) < 60, "\n".join(lines)
