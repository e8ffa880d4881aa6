"""ceylon-redis: a Redis Streams job queue, with Ceylon's TaskProcessingPlayground API on top.

Quiet by default, as a library should be: ``logger.enable("ceylon_redis")`` to see its logs.
"""

from loguru import logger

from .client import AsyncClient, AsyncGraph, Client, Graph
from .codec import Record, register_type
from .coordinator import Coordinator
from .errors import (
    CeylonRedisError,
    DependencyError,
    EncodeError,
    ProtocolMismatchError,
    RedisConnectionError,
    RedisTimeoutError,
    ReplicationError,
    Retry,
    ScriptError,
    TaskExistsError,
    TaskTimeoutError,
    UnknownScheduleError,
    UnknownTaskError,
    ValidationError,
)
from .models import (
    DeadLetter,
    DeadRetry,
    GraphInfo,
    OnFailure,
    Percentiles,
    QueueInfo,
    RoleStats,
    Stats,
    TaskEvent,
    TaskInfo,
    TaskResult,
    TaskStatus,
    TaskUpdate,
    WorkerInfo,
)
from .playground import Task, TaskManager, TaskProcessingPlayground
from .process import ProcessRequest, ProcessWorker, TaskContext, current_task
from .protocol import Dep, TaskDef
from .schedules import ScheduleInfo
from .settings import Settings
from .worker import Worker

logger.disable("ceylon_redis")

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncGraph",
    "CeylonRedisError",
    "Client",
    "Coordinator",
    "DeadLetter",
    "DeadRetry",
    "Dep",
    "DependencyError",
    "EncodeError",
    "Graph",
    "GraphInfo",
    "OnFailure",
    "Percentiles",
    "ProcessRequest",
    "ProcessWorker",
    "ProtocolMismatchError",
    "QueueInfo",
    "Record",
    "RedisConnectionError",
    "RedisTimeoutError",
    "ReplicationError",
    "Retry",
    "RoleStats",
    "ScheduleInfo",
    "ScriptError",
    "Settings",
    "Stats",
    "Task",
    "TaskContext",
    "TaskDef",
    "TaskEvent",
    "TaskExistsError",
    "TaskInfo",
    "TaskManager",
    "TaskProcessingPlayground",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "TaskUpdate",
    "UnknownScheduleError",
    "UnknownTaskError",
    "ValidationError",
    "Worker",
    "WorkerInfo",
    "current_task",
    "register_type",
]
