"""The docs-example runner's own rules (tests/docs_examples.py): how a block splits into commands and
shown outputs, and what counts as a match in substance."""

from __future__ import annotations

from tests.docs_examples import mismatches, parse_block, with_ports


def test_a_block_splits_into_commands_with_their_shown_outputs() -> None:
    # Given a block with a continued command, its output on two lines, prose, and a quoted string over lines
    lines = [
        "# prose before",
        "curl -s -F file=@x.jpg \\",
        "     http://127.0.0.1:8000/image_similarity_search",
        '# {"duplicate_found": false,',
        '#  "s3_url": "http://127.0.0.1:8003/alyaimg/…"}',
        "# the same again (prose)",
        'echo \'{"a": 1,',
        '  "b": 2}\' > /tmp/x.json',
    ]
    # When it is parsed
    block = parse_block("page.md", 10, lines, None)
    # Then there are two commands; the first carries both output lines and not the prose
    assert [c.text.splitlines()[0] for c in block.commands] == ["curl -s -F file=@x.jpg \\", 'echo \'{"a": 1,']
    assert block.commands[0].expected == '{"duplicate_found": false, "s3_url": "http://127.0.0.1:8003/alyaimg/…"}'
    assert block.commands[1].expected == ""
    assert block.commands[0].line == 12


def test_outputs_match_in_substance_and_a_wrong_value_is_named() -> None:
    # Given a shown output with a plain value, a pattern with …, and a key shown only by …
    shown = (
        '{"duplicate_found": true, "results": [{"id": …, "distance": 0.0, "path": "http://h/alyaimg/90/901b….jpg"}]}'
    )
    real = '{"duplicate_found":true,"results":[{"id":376530,"distance":0.0,"path":"http://h/alyaimg/90/901bcd.jpg","x":1}]}'
    # Then the real answer matches; a different value or a missing key is reported by name
    assert mismatches(shown, real) == []
    assert mismatches(shown, real.replace("true", "false")) == ["duplicate_found: shown True, not in the output"]
    assert mismatches(shown, real.replace('"id"', '"key"')) == ["id: shown Ellipsis, not in the output"]
    assert mismatches(shown, real.replace("901bcd", "aa01")) != []
    # Given a shown status code and URL outputs (not JSON)
    assert mismatches("204", "204") == [] and mismatches("204", "404") != []
    assert mismatches("202 " + '{"status": "queued"}', 'HTTP/1.1 202\n\n{"status":"queued"}') == []


def test_documented_ports_become_the_test_stacks() -> None:
    ports = {"api": 1, "moto": 2, "opensearch": 3, "cdn": 4}
    assert with_ports("http://127.0.0.1:8000/x http://127.0.0.1:8003/y 127.0.0.1:80001", ports) == (
        "http://127.0.0.1:1/x http://127.0.0.1:4/y 127.0.0.1:80001"
    )
