"""ceylon-redis: a Redis Streams job queue, with Ceylon's TaskProcessingPlayground API on top.

Quiet by default, as a library should be: ``logger.enable("ceylon_redis")`` to see its logs.
"""

from loguru import logger

from .client import AsyncClient, Client
from .codec import Record, register_type
from .errors import (
    CeylonRedisError,
    DependencyError,
    EncodeError,
    TaskExistsError,
    TaskTimeoutError,
    UnknownTaskError,
    ValidationError,
)
from .models import QueueInfo, TaskInfo, TaskResult, TaskStatus, WorkerInfo
from .playground import Task, TaskManager, TaskProcessingPlayground
from .process import ProcessRequest, ProcessWorker, TaskContext, current_task
from .protocol import TaskDef
from .settings import Settings
from .worker import Worker

logger.disable("ceylon_redis")

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "CeylonRedisError",
    "Client",
    "DependencyError",
    "EncodeError",
    "ProcessRequest",
    "ProcessWorker",
    "QueueInfo",
    "Record",
    "Settings",
    "Task",
    "TaskContext",
    "TaskDef",
    "TaskExistsError",
    "TaskInfo",
    "TaskManager",
    "TaskProcessingPlayground",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "UnknownTaskError",
    "ValidationError",
    "Worker",
    "WorkerInfo",
    "current_task",
    "register_type",
]
