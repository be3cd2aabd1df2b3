"""LogReader: each run reads only what is new, through rotation, compression, truncation,
copy-truncate, partial lines and the read limit. Every run's state goes through JSON, as it
does through the store."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsctl.files import LocalFiles
from opsctl.logread import Block, LogReader

files = LocalFiles()


class Runs:
    """Successive runs of a reader on one pattern, with the state kept as JSON between."""

    def __init__(self, pattern: Path | str, **options: Any) -> None:
        self.pattern = str(pattern)
        self.options = options
        self.state: dict[str, Any] | None = None
        self.notes: list[str] = []
        self.blocks: list[Block] = []

    def run(self, **options: Any) -> list[str]:
        reader = LogReader(files, self.pattern, **{**self.options, **options})
        self.blocks = list(reader.blocks(self.state))
        for block in self.blocks:
            assert block.data.endswith(b"\n"), "a block ends with a whole line"
        self.state = json.loads(json.dumps(reader.state))
        self.notes = reader.notes
        return [line for block in self.blocks for line in block.data.decode().splitlines()]


def lines(first: int, last: int, prefix: str = "line") -> str:
    return "".join(f"{prefix} {n}\n" for n in range(first, last + 1))


def append(path: Path, text: str | bytes) -> None:
    with path.open("ab") as file:
        file.write(text.encode() if isinstance(text, str) else text)


def age(path: Path, seconds_ago: float) -> None:
    """Set the file's modification time in the past (glob orders by it)."""
    when = datetime.now(UTC).timestamp() - seconds_ago
    os.utime(path, (when, when))


def test_a_first_run_starts_at_the_end_and_the_next_reads_only_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 100))
    runs = Runs(tmp_path / "*.log")
    assert runs.run() == []
    assert any("first run: starting at the end of 1 file" in note for note in runs.notes)
    append(log, lines(101, 103))
    assert runs.run() == ["line 101", "line 102", "line 103"]
    assert runs.run() == []


def test_a_first_run_with_start_at_end_false_reads_everything(tmp_path: Path) -> None:
    (tmp_path / "upload.log").write_text(lines(1, 5))
    runs = Runs(tmp_path / "*.log", start_at_end=False)
    assert runs.run() == [f"line {n}" for n in range(1, 6)]
    assert runs.notes == []


def test_a_first_run_at_the_end_leaves_a_partial_last_line_to_be_completed(
    tmp_path: Path,
) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 3) + "line 4 is half")
    runs = Runs(log)
    assert runs.run() == []
    append(log, " done\n")
    assert runs.run() == ["line 4 is half done"]


def test_a_partial_last_line_waits_for_the_next_run(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 2) + "line 3 wri")
    runs = Runs(log, start_at_end=False)
    assert runs.run() == ["line 1", "line 2"]
    assert runs.run() == []
    append(log, "tten\nline 4 aga")
    assert runs.run() == ["line 3 written"]
    append(log, "in\n")
    assert runs.run() == ["line 4 again"]


def test_a_file_renamed_to_dot_1_is_finished_then_the_new_file_read(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 3))
    runs = Runs(f"{log}*", start_at_end=False)
    assert runs.run() == ["line 1", "line 2", "line 3"]
    append(log, lines(4, 5))  # written after the run, before the rotation
    log.rename(tmp_path / "upload.log.1")
    age(tmp_path / "upload.log.1", 60)
    log.write_text(lines(1, 2, "new"))
    assert runs.run() == ["line 4", "line 5", "new 1", "new 2"]
    assert any("upload.log was rotated" in note for note in runs.notes)
    assert runs.run() == []


def test_a_rotated_file_outside_the_glob_is_found_next_to_its_old_name(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 3))
    runs = Runs(log, start_at_end=False)
    runs.run()
    append(log, lines(4, 4))
    log.rename(tmp_path / "upload.log-20261101")
    log.write_text(lines(1, 1, "new"))
    assert runs.run() == ["line 4", "new 1"]
    # the side file is not followed any further
    assert [entry["path"] for entry in runs.state["files"]] == [str(log)]
    append(tmp_path / "upload.log-20261101", lines(5, 5))
    assert runs.run() == []


def test_rotation_to_gz_finishes_the_tail_from_the_compressed_file(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 3))
    runs = Runs(f"{log}*", start_at_end=False)
    runs.run()
    append(log, lines(4, 6))
    with log.open("rb") as source, gzip.open(tmp_path / "upload.log.1.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    age(tmp_path / "upload.log.1.gz", 60)
    log.write_text(lines(1, 1, "new"))
    assert runs.run() == ["line 4", "line 5", "line 6", "new 1"]
    assert runs.run() == []


def test_a_rotated_file_compressed_later_is_not_read_again(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 3))
    runs = Runs(f"{log}*", start_at_end=False)
    runs.run()
    rotated = tmp_path / "upload.log.1"
    log.rename(rotated)
    log.write_text(lines(1, 1, "new"))
    assert runs.run() == ["new 1"]
    # delaycompress: the .1 becomes .2.gz at the next rotation
    with rotated.open("rb") as source, gzip.open(tmp_path / "upload.log.2.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    rotated.unlink()
    log.rename(rotated)
    log.write_text(lines(1, 1, "newer"))
    assert runs.run() == ["newer 1"]
    assert not any("missing" in note for note in runs.notes), runs.notes


def test_an_unknown_gz_is_read_whole_once(tmp_path: Path) -> None:
    (tmp_path / "upload.log").write_text(lines(1, 1))
    runs = Runs(tmp_path / "upload.log*")
    runs.run()
    with gzip.open(tmp_path / "upload.log.9.gz", "wb") as target:
        target.write(lines(1, 3, "old").encode() + b"last without newline")
    assert runs.run() == ["old 1", "old 2", "old 3", "last without newline"]
    assert runs.run() == []


def test_a_first_run_does_not_read_existing_gz_files(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "upload.log.1.gz", "wb") as target:
        target.write(lines(1, 3).encode())
    runs = Runs(tmp_path / "upload.log*")
    assert runs.run() == []
    assert runs.run() == []
    assert Runs(tmp_path / "upload.log*", start_at_end=False).run() == [
        "line 1",
        "line 2",
        "line 3",
    ]


def test_a_damaged_gz_gives_a_note_and_what_could_be_read(tmp_path: Path) -> None:
    (tmp_path / "upload.log").write_text("")
    runs = Runs(tmp_path / "upload.log*")
    runs.run()
    (tmp_path / "upload.log.1.gz").write_bytes(b"not gzip at all\n")
    assert runs.run() == []
    assert any("upload.log.1.gz is not a readable gzip file" in n for n in runs.notes)


def test_truncation_reads_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 50))
    runs = Runs(log, start_at_end=False)
    runs.run()
    log.write_text(lines(1, 2, "again"))
    assert runs.run() == ["again 1", "again 2"]
    assert any("upload.log was truncated; read from the start" == n for n in runs.notes)


def test_truncation_that_grew_past_the_old_offset_is_seen_by_its_first_line(
    tmp_path: Path,
) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 2))
    runs = Runs(log, start_at_end=False)
    runs.run()
    log.write_text(lines(1, 20, "other"))  # same inode, bigger than before
    assert runs.run() == [f"other {n}" for n in range(1, 21)]
    assert any("truncated" in note for note in runs.notes)


def test_copy_truncate_reads_the_old_tail_from_the_copy_and_the_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 3))
    runs = Runs(log, start_at_end=False)
    runs.run()
    append(log, lines(4, 5))
    shutil.copyfile(log, tmp_path / "upload.log.1")
    age(tmp_path / "upload.log.1", 60)
    with log.open("r+b") as file:
        file.truncate(0)
    append(log, lines(1, 2, "after"))
    assert runs.run() == ["line 4", "line 5", "after 1", "after 2"]
    assert runs.run() == []


def test_copy_truncate_with_the_copy_in_the_glob(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 3))
    runs = Runs(f"{log}*", start_at_end=False)
    runs.run()
    append(log, lines(4, 4))
    shutil.copyfile(log, tmp_path / "upload.log.1")
    age(tmp_path / "upload.log.1", 60)
    with log.open("r+b") as file:
        file.truncate(0)
    assert runs.run() == ["line 4"]
    append(log, lines(1, 1, "after"))
    assert runs.run() == ["after 1"]


def test_a_one_megabyte_line_comes_whole(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    big = "x" * (1024 * 1024)
    log.write_text(f"before\n{big}\nafter\n")
    runs = Runs(log, start_at_end=False, block_size=64 * 1024)
    assert runs.run() == ["before", big, "after"]
    append(log, big[:1000])
    assert runs.run() == []
    append(log, big[1000:] + "\n")
    assert runs.run() == [big]


def test_a_line_longer_than_the_limit_is_cut_with_a_note(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_text("y" * 5000 + "\nshort\n")
    runs = Runs(log, start_at_end=False, block_size=1000, max_line_bytes=2000)
    found = runs.run()
    assert "short" in found and "".join(found[:-1]) == "y" * 5000
    assert any("was cut" in note for note in runs.notes)


def test_the_read_limit_stops_a_run_and_the_next_one_goes_on(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 1000))
    runs = Runs(log, start_at_end=False, block_size=1024, max_bytes=4096)
    first = runs.run()
    assert 0 < len(first) < 1000
    assert any("read limit of 4.0 KB reached" in note for note in runs.notes)
    seen = list(first)
    for _ in range(100):
        more = runs.run()
        if not more:
            break
        seen += more
    assert seen == [f"line {n}" for n in range(1, 1001)]


def test_the_read_limit_leaves_whole_files_for_the_next_run(tmp_path: Path) -> None:
    for n, name in enumerate(("a.log", "b.log", "c.log")):
        (tmp_path / name).write_text(lines(1, 100, name))
        age(tmp_path / name, 300 - n)
    runs = Runs(tmp_path / "*.log", start_at_end=False, block_size=512, max_bytes=1000)
    seen: list[str] = []
    for _ in range(50):
        more = runs.run()
        if not more:
            break
        seen += more
    assert len(seen) == 300 and len(set(seen)) == 300
    assert seen[0] == "a.log 1" and seen[-1] == "c.log 100"


def test_the_state_is_json_and_stops_early_where_the_consumer_stopped(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_text(lines(1, 300))
    reader = LogReader(files, str(log), start_at_end=False, block_size=256)
    blocks = reader.blocks(None)
    first = next(blocks)
    state = json.loads(json.dumps(reader.state))
    assert state["files"][0]["offset"] == len(first.data)
    rest = [b.data for b in LogReader(files, str(log), block_size=256).blocks(state)]
    assert first.data + b"".join(rest) == log.read_bytes()


def test_unreadable_saved_state_starts_afresh_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "upload.log").write_text(lines(1, 2))
    reader = LogReader(files, str(tmp_path / "*.log"))
    assert list(reader.blocks({"version": 99, "files": []})) == []
    assert any("unreadable" in note for note in reader.notes)


def test_no_files_gives_nothing(tmp_path: Path) -> None:
    reader = LogReader(files, str(tmp_path / "*.log"))
    assert list(reader.blocks(None)) == []
    assert reader.files_matched == 0
    assert reader.state == {"version": 1, "files": []}


def test_invalid_bytes_pass_through_untouched(tmp_path: Path) -> None:
    log = tmp_path / "upload.log"
    log.write_bytes(b"ok\n\xff\xfe\x80 broken\n")
    data = b"".join(b.data for b in LogReader(files, str(log), start_at_end=False).blocks(None))
    assert data == b"ok\n\xff\xfe\x80 broken\n"
