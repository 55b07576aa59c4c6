"""Renders the command table as COMMAND INFO entries, COMMAND DOCS maps and usage lines.

redis-cli builds its hints and ``help <cmd>`` from COMMAND DOCS: each doc map carries
``summary``, ``since``, ``group``, ``complexity`` and ``arguments`` (maps with ``name``,
``type``, optional ``token``, ``flags`` as simple strings, nested ``arguments``), and
``subcommands`` keyed ``container|sub``.
"""

from __future__ import annotations

from clusterwatch.resp import Map, Reply, Set, SimpleString

from ._spec import Arg, ArgType, CommandSpec


def arg_usage(arg: Arg) -> str:
    """The argument as Redis's usage line writes it: ``[LEVEL critical|info]``."""
    if arg.type is ArgType.PURE_TOKEN:
        text = arg.token or arg.name.upper()
    elif arg.type is ArgType.ONEOF:
        text = "|".join(arg_usage(inner) for inner in arg.args)
    elif arg.type is ArgType.BLOCK:
        text = " ".join(arg_usage(inner) for inner in arg.args)
    else:
        text = arg.name
        if arg.token:
            text = f"{arg.token} {text}"
    if arg.multiple:
        text = f"{text} [{text} ...]"
    if arg.optional:
        text = f"[{text}]"
    return text


def usage(spec: CommandSpec) -> str:
    words = [spec.full_name.replace("|", " ").upper()]
    words.extend(arg_usage(arg) for arg in spec.args)
    return " ".join(words)


def _arg_doc(arg: Arg) -> Map:
    items: list[tuple[Reply, Reply]] = [("name", arg.name), ("type", str(arg.type))]
    if arg.type is not ArgType.PURE_TOKEN and arg.type not in (ArgType.ONEOF, ArgType.BLOCK):
        items.append(("display_text", arg.name))
    if arg.token:
        items.append(("token", arg.token))
    flags = [SimpleString(flag) for flag, on in (("optional", arg.optional),
                                                 ("multiple", arg.multiple)) if on]
    if flags:
        items.append(("flags", Set(flags)))
    if arg.args:
        items.append(("arguments", [_arg_doc(inner) for inner in arg.args]))
    return Map(items)


def command_docs(spec: CommandSpec) -> Map:
    items: list[tuple[Reply, Reply]] = [
        ("summary", spec.summary),
        ("since", spec.since),
        ("group", str(spec.group)),
        ("complexity", spec.complexity),
    ]
    if spec.args:
        items.append(("arguments", [_arg_doc(arg) for arg in spec.args]))
    if spec.subcommands:
        items.append(("subcommands", Map(
            (sub.full_name, command_docs(sub)) for sub in spec.subcommands
        )))
    return Map(items)


def command_info(spec: CommandSpec) -> list[Reply]:
    """Redis 7's ten-element COMMAND INFO entry. A command whose keys sit inside its
    arguments (BUS PUBLISH: the node ids) has Redis's ``movablekeys`` flag, no first/last
    key, and one key specification whose search is ``unknown``: COMMAND GETKEYS finds them."""
    key_specs: list[Reply] = []
    if spec.getkeys is not None:
        key_specs.append(Map([
            ("notes", spec.key_note),
            ("flags", Set([SimpleString("RW"), SimpleString("UPDATE")])),
            ("begin_search", Map([("type", "unknown"), ("spec", Map([]))])),
            ("find_keys", Map([("type", "unknown"), ("spec", Map([]))])),
        ]))
    return [
        spec.full_name,
        spec.arity,
        Set(SimpleString(name) for name in spec.flag_names()),
        0,
        0,
        0,
        Set(SimpleString(category) for category in spec.categories),
        [],
        key_specs,
        [command_info(sub) for sub in spec.subcommands],
    ]
