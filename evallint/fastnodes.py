"""`isinstance` on libcst nodes at the speed of an ordinary class.

Every libcst node class derives from `CSTNode(ABC)`, so its metaclass is `ABCMeta`
and every `isinstance(x, cst.Attribute)` that is not an exact type match runs
`ABCMeta.__instancecheck__` (a Python frame around the ABC registry lookup): the
facts layer and the rules make millions of such checks, and in a profile they were
the largest single cost after the parse. libcst registers no virtual subclasses on
its nodes, so the plain type check (`type.__instancecheck__`, the subclass walk
done in C) answers the same. `install()` moves every node class, and through
inheritance every class derived from one later, onto a metaclass that uses it;
abstract methods are still enforced (that lives in the class flags, not the
metaclass). If any node class has a virtual subclass registered, nothing is switched
(the ABC check of its bases would see it, the plain check would not).
"""
from __future__ import annotations

import abc

from libcst._nodes.base import CSTNode


class NodeMeta(abc.ABCMeta):
    __instancecheck__ = type.__instancecheck__
    __subclasscheck__ = type.__subclasscheck__


def _node_classes() -> list[type]:
    found, seen, i = [CSTNode], {CSTNode}, 0
    while i < len(found):
        for sub in found[i].__subclasses__():
            if sub not in seen:
                seen.add(sub)
                found.append(sub)
        i += 1
    return found


def _has_virtual_subclasses(cls: type) -> bool:
    # A class someone called `register()` on answers `isinstance` for classes outside
    # its MRO: only the ABC check knows those.
    try:
        registry = abc._get_dump(cls)[0]
    except (AttributeError, TypeError):
        return True
    return bool(registry)


def install() -> None:
    classes = _node_classes()
    if any(_has_virtual_subclasses(cls) for cls in classes):
        return
    for cls in classes:
        if type(cls) is abc.ABCMeta:
            try:
                cls.__class__ = NodeMeta
            except TypeError:
                pass


install()
