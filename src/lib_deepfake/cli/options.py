"""Click option groups built from config dataclasses (Polygraphy builds its tools from argument groups the same way).

A group is written once, next to nothing but its options, and used twice::

    DECODE_OPTIONS = OptionGroup(DecodeSettings,
        option("--timeout", dest="timeout_s", type=click.FloatRange(1, None), help="Per-file decode time limit."),
        ...)

    @click.command()
    @DECODE_OPTIONS                       # adds the group's options to the command
    def main(**options):
        settings = DECODE_OPTIONS.from_options(options)   # builds the DecodeSettings from the parsed values

An option's default is the config field's default (one default per setting, in the dataclass); its click parameter
name (``dest``) is the setting's flat name, unique across groups, so groups combine on one command. A group can hold
another group for a field whose value is itself a config (``ScanConfig.decode``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: ``Option.field`` of an option that sets no config field itself (the group's ``build`` consumes it).
NO_FIELD = ""


class _FromConfig:
    def __repr__(self) -> str:
        return "FROM_CONFIG"


#: ``Option.default`` of an option whose default is its config field's default (the usual case).
FROM_CONFIG: Any = _FromConfig()


@dataclass(frozen=True)
class Option:
    """One command-line option of a group.

    Attributes:
        decls: the option's names, e.g. ``("--timeout",)`` or ``("--faces/--no-faces",)``.
        dest: the click parameter name (the setting's flat name, unique on a command).
        field: the config field it sets (None: same as ``dest``; :data:`NO_FIELD`: none, the group's ``build``
            reads it).
        to_config: converts the parsed value into the field's value (e.g. 0 -> None).
        default: the CLI default when it is not the field's default (options without a field, or a value that
            ``to_config`` maps onto the field's default).
        click_kwargs: everything else ``click.option`` takes (type, help, is_flag, ...).
    """

    decls: tuple[str, ...]
    dest: str
    field: str | None = None
    to_config: Callable[[Any], Any] | None = None
    default: Any = FROM_CONFIG
    click_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.dest if self.field is None else self.field


def option(*decls: str, dest: str, field: str | None = None, to_config: Callable[[Any], Any] | None = None,
           default: Any = FROM_CONFIG, **click_kwargs: Any) -> Option:  # fmt: skip
    """An :class:`Option` (keyword arguments as ``click.option`` takes them)."""
    return Option(decls, dest, field, to_config, default, click_kwargs)


@dataclass(frozen=True)
class Nested:
    """A config field whose value is built by another group."""

    field: str
    group: OptionGroup


class OptionGroup:
    """Options that build one config object; see the module docstring.

    Args:
        config_type: the dataclass the group builds (its field defaults are the options' defaults).
        items: the options, and :class:`Nested` groups for fields that hold a config, in ``--help`` order.
        build: ``fn(values) -> config`` replacing ``config_type(**values)``, for groups whose options do not map
            one to one onto fields; ``values`` holds every field value and every :data:`NO_FIELD` option by dest.
    """

    def __init__(self, config_type: type, *items: Option | Nested,
                 build: Callable[[dict[str, Any]], Any] | None = None) -> None:  # fmt: skip
        self.config_type = config_type
        self.items = items
        self.build = build or (lambda values: config_type(**values))
        fields = {f.name: f for f in dataclasses.fields(config_type)}
        self._defaults: dict[str, Any] = {}  # CLI default by dest, nested groups' included
        for opt in self.items:
            if isinstance(opt, Nested):
                self._defaults.update(opt.group._defaults)
            elif opt.default is not FROM_CONFIG:
                self._defaults[opt.dest] = opt.default
            elif opt.target in fields and fields[opt.target].default is not dataclasses.MISSING:
                self._defaults[opt.dest] = fields[opt.target].default

    def options(self) -> Iterator[Option]:
        """Every option of the group, nested groups' included, in ``--help`` order."""
        for item in self.items:
            if isinstance(item, Nested):
                yield from item.group.options()
            else:
                yield item

    def __call__(self, func: F) -> F:
        """Add the group's options to a click command."""
        for opt in reversed(list(self.options())):
            kwargs = dict(opt.click_kwargs)
            if opt.dest in self._defaults:
                kwargs["default"] = self._defaults[opt.dest]
            func = click.option(*opt.decls, opt.dest, **kwargs)(func)
        return func

    def from_options(self, values: MutableMapping[str, Any]) -> Any:
        """Build the config from a command's parsed values, taking the group's entries out of ``values``.

        Raises:
            LibDeepfakeError (ContractError, PlanError, ...): the values do not make a valid config.
            click.UsageError: options of the group contradict each other (raised by ``build``).
        """
        kwargs: dict[str, Any] = {}
        for item in self.items:
            if isinstance(item, Nested):
                kwargs[item.field] = item.group.from_options(values)
                continue
            value = values.pop(item.dest)
            kwargs[item.dest if item.field == NO_FIELD else item.target] = (
                item.to_config(value) if item.to_config is not None else value
            )
        return self.build(kwargs)


__all__ = ["FROM_CONFIG", "NO_FIELD", "Nested", "Option", "OptionGroup", "option"]
