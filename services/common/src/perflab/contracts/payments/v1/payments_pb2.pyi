from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_STATUS_UNSPECIFIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_APPROVED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_DECLINED: _ClassVar[PaymentStatus]
PAYMENT_STATUS_UNSPECIFIED: PaymentStatus
PAYMENT_STATUS_APPROVED: PaymentStatus
PAYMENT_STATUS_DECLINED: PaymentStatus

class ChargeRequest(_message.Message):
    __slots__ = ("order_id", "customer_id", "amount_cents", "currency")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    amount_cents: int
    currency: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., amount_cents: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class Payment(_message.Message):
    __slots__ = ("id", "order_id", "status", "amount_cents", "currency", "decline_reason", "replayed")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DECLINE_REASON_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    id: str
    order_id: str
    status: PaymentStatus
    amount_cents: int
    currency: str
    decline_reason: str
    replayed: bool
    def __init__(self, id: _Optional[str] = ..., order_id: _Optional[str] = ..., status: _Optional[_Union[PaymentStatus, str]] = ..., amount_cents: _Optional[int] = ..., currency: _Optional[str] = ..., decline_reason: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...
