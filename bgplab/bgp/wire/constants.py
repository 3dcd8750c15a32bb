"""Numbers from the BGP RFCs and IANA registries, named once so the codec never uses magic values."""

from __future__ import annotations

from enum import IntEnum

MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_MESSAGE_LEN = 4096
MAX_EXTENDED_MESSAGE_LEN = 65535
BGP_VERSION = 4
AS_TRANS = 23456


class MessageType(IntEnum):
    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


# RFC 4271 section 6.1: the smallest legal length of each message type, header included.
MIN_LENGTH = {
    MessageType.OPEN: 29,
    MessageType.UPDATE: 23,
    MessageType.NOTIFICATION: 21,
    MessageType.KEEPALIVE: 19,
    MessageType.ROUTE_REFRESH: 19,  # RFC 7313 section 5: a bad length is 7/1, answered by the decoder
}


class Afi(IntEnum):
    IPV4 = 1
    IPV6 = 2


class Safi(IntEnum):
    UNICAST = 1
    MULTICAST = 2


class CapabilityCode(IntEnum):
    MULTIPROTOCOL = 1
    ROUTE_REFRESH = 2
    EXTENDED_NEXT_HOP = 5
    EXTENDED_MESSAGE = 6
    GRACEFUL_RESTART = 64
    FOUR_OCTET_AS = 65
    ADD_PATH = 69
    ENHANCED_ROUTE_REFRESH = 70
    LONG_LIVED_GRACEFUL_RESTART = 71
    FQDN = 73
    SOFTWARE_VERSION = 75
    ROUTE_REFRESH_CISCO = 128


class OptionalParameter(IntEnum):
    CAPABILITIES = 2
    EXTENDED_LENGTH = 255  # RFC 9072 marker in the first parameter type


class AttrFlag(IntEnum):
    OPTIONAL = 0x80
    TRANSITIVE = 0x40
    PARTIAL = 0x20
    EXTENDED_LENGTH = 0x10


class AttrType(IntEnum):
    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MULTI_EXIT_DISC = 4
    LOCAL_PREF = 5
    ATOMIC_AGGREGATE = 6
    AGGREGATOR = 7
    COMMUNITIES = 8
    ORIGINATOR_ID = 9
    CLUSTER_LIST = 10
    MP_REACH_NLRI = 14
    MP_UNREACH_NLRI = 15
    EXTENDED_COMMUNITIES = 16
    AS4_PATH = 17
    AS4_AGGREGATOR = 18
    LARGE_COMMUNITIES = 32
    ONLY_TO_CUSTOMER = 35


WELL_KNOWN = AttrFlag.TRANSITIVE
OPTIONAL_TRANSITIVE = AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE
OPTIONAL_NON_TRANSITIVE = AttrFlag.OPTIONAL

# The Optional and Transitive bits each known attribute must carry (RFC 7606 section 3 c).
EXPECTED_FLAGS: dict[int, int] = {
    AttrType.ORIGIN: WELL_KNOWN,
    AttrType.AS_PATH: WELL_KNOWN,
    AttrType.NEXT_HOP: WELL_KNOWN,
    AttrType.MULTI_EXIT_DISC: OPTIONAL_NON_TRANSITIVE,
    AttrType.LOCAL_PREF: WELL_KNOWN,
    AttrType.ATOMIC_AGGREGATE: WELL_KNOWN,
    AttrType.AGGREGATOR: OPTIONAL_TRANSITIVE,
    AttrType.COMMUNITIES: OPTIONAL_TRANSITIVE,
    AttrType.ORIGINATOR_ID: OPTIONAL_NON_TRANSITIVE,
    AttrType.CLUSTER_LIST: OPTIONAL_NON_TRANSITIVE,
    AttrType.MP_REACH_NLRI: OPTIONAL_NON_TRANSITIVE,
    AttrType.MP_UNREACH_NLRI: OPTIONAL_NON_TRANSITIVE,
    AttrType.EXTENDED_COMMUNITIES: OPTIONAL_TRANSITIVE,
    AttrType.AS4_PATH: OPTIONAL_TRANSITIVE,
    AttrType.AS4_AGGREGATOR: OPTIONAL_TRANSITIVE,
    AttrType.LARGE_COMMUNITIES: OPTIONAL_TRANSITIVE,
    AttrType.ONLY_TO_CUSTOMER: OPTIONAL_TRANSITIVE,
}


class Origin(IntEnum):
    IGP = 0
    EGP = 1
    INCOMPLETE = 2


class AsPathSegmentType(IntEnum):
    AS_SET = 1
    AS_SEQUENCE = 2
    AS_CONFED_SEQUENCE = 3
    AS_CONFED_SET = 4


class WellKnownCommunity(IntEnum):
    GRACEFUL_SHUTDOWN = 0xFFFF0000
    ACCEPT_OWN = 0xFFFF0001
    BLACKHOLE = 0xFFFF029A
    LLGR_STALE = 0xFFFF0006
    NO_LLGR = 0xFFFF0007
    NO_EXPORT = 0xFFFFFF01
    NO_ADVERTISE = 0xFFFFFF02
    NO_EXPORT_SUBCONFED = 0xFFFFFF03
    NO_PEER = 0xFFFFFF04


class ErrorCode(IntEnum):
    MESSAGE_HEADER = 1
    OPEN_MESSAGE = 2
    UPDATE_MESSAGE = 3
    HOLD_TIMER_EXPIRED = 4
    FSM = 5
    CEASE = 6
    ROUTE_REFRESH_MESSAGE = 7
    SEND_HOLD_TIMER_EXPIRED = 8


class HeaderSubcode(IntEnum):
    CONNECTION_NOT_SYNCHRONIZED = 1
    BAD_MESSAGE_LENGTH = 2
    BAD_MESSAGE_TYPE = 3


class OpenSubcode(IntEnum):
    UNSPECIFIC = 0
    UNSUPPORTED_VERSION_NUMBER = 1
    BAD_PEER_AS = 2
    BAD_BGP_IDENTIFIER = 3
    UNSUPPORTED_OPTIONAL_PARAMETER = 4
    AUTHENTICATION_FAILURE = 5  # deprecated
    UNACCEPTABLE_HOLD_TIME = 6
    UNSUPPORTED_CAPABILITY = 7
    ROLE_MISMATCH = 11


class UpdateSubcode(IntEnum):
    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
    MISSING_WELL_KNOWN_ATTRIBUTE = 3
    ATTRIBUTE_FLAGS_ERROR = 4
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ORIGIN_ATTRIBUTE = 6
    AS_ROUTING_LOOP = 7  # deprecated
    INVALID_NEXT_HOP_ATTRIBUTE = 8
    OPTIONAL_ATTRIBUTE_ERROR = 9
    INVALID_NETWORK_FIELD = 10
    MALFORMED_AS_PATH = 11


class FsmSubcode(IntEnum):
    UNSPECIFIED = 0
    UNEXPECTED_MESSAGE_IN_OPENSENT = 1
    UNEXPECTED_MESSAGE_IN_OPENCONFIRM = 2
    UNEXPECTED_MESSAGE_IN_ESTABLISHED = 3


class CeaseSubcode(IntEnum):
    MAXIMUM_PREFIXES_REACHED = 1
    ADMINISTRATIVE_SHUTDOWN = 2
    PEER_DECONFIGURED = 3
    ADMINISTRATIVE_RESET = 4
    CONNECTION_REJECTED = 5
    OTHER_CONFIGURATION_CHANGE = 6
    CONNECTION_COLLISION_RESOLUTION = 7
    OUT_OF_RESOURCES = 8
    HARD_RESET = 9
    BFD_DOWN = 10


class RouteRefreshSubcode(IntEnum):
    INVALID_MESSAGE_LENGTH = 1


class RouteRefreshSubtype(IntEnum):
    NORMAL = 0
    BEGINNING_OF_ROUTE_REFRESH = 1
    END_OF_ROUTE_REFRESH = 2


SUBCODES: dict[int, type[IntEnum]] = {
    ErrorCode.MESSAGE_HEADER: HeaderSubcode,
    ErrorCode.OPEN_MESSAGE: OpenSubcode,
    ErrorCode.UPDATE_MESSAGE: UpdateSubcode,
    ErrorCode.FSM: FsmSubcode,
    ErrorCode.CEASE: CeaseSubcode,
    ErrorCode.ROUTE_REFRESH_MESSAGE: RouteRefreshSubcode,
}


def describe_error(code: int, subcode: int) -> str:
    """A readable "code/subcode (Name / Name)" string for logs and reports; never raises."""
    try:
        code_name = ErrorCode(code).name.replace("_", " ").title()
    except ValueError:
        return f"{code}/{subcode} (unknown code)"
    sub_enum = SUBCODES.get(code)
    sub_name = ""
    if sub_enum is not None:
        try:
            sub_name = " / " + sub_enum(subcode).name.replace("_", " ").lower()
        except ValueError:
            sub_name = " / unknown subcode"
    return f"{code}/{subcode} ({code_name}{sub_name})"
