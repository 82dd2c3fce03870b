"""tasks branch: hub directory, tasks and their history, consumer and scheduler bookkeeping

Revision ID: tasks_0001
Revises:
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "tasks_0001"
down_revision = None
branch_labels = ("tasks",)
depends_on = None


def upgrade() -> None:
    op.create_table('hubs',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('processed_events',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('consumer', sa.String(length=64), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_table('scheduler_leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('task_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    op.create_index(op.f('ix_task_outbox_created_at'), 'task_outbox', ['created_at'], unique=False)
    op.create_index(op.f('ix_task_outbox_sent_at'), 'task_outbox', ['sent_at'], unique=False)
    op.create_table('task_digests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hub_key', sa.String(length=32), nullable=False),
    sa.Column('digest_date', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_count', sa.Integer(), nullable=False),
    sa.Column('overdue_count', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), server_default='', nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('hub_key', 'digest_date', name='uq_task_digest_hub_day')
    )
    op.create_table('hub_areas',
    sa.Column('local_authority_key', sa.String(length=200), nullable=False),
    sa.Column('local_authority', sa.String(length=200), nullable=False),
    sa.Column('hub_code', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['hub_code'], ['hubs.code'], ),
    sa.PrimaryKeyConstraint('local_authority_key')
    )
    op.create_index(op.f('ix_hub_areas_hub_code'), 'hub_areas', ['hub_code'], unique=False)
    op.create_table('prison_omus',
    sa.Column('prison', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('hub_code', sa.String(length=32), nullable=False),
    sa.Column('local_authority', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['hub_code'], ['hubs.code'], ),
    sa.PrimaryKeyConstraint('prison')
    )
    op.create_index(op.f('ix_prison_omus_hub_code'), 'prison_omus', ['hub_code'], unique=False)
    op.create_table('staff',
    sa.Column('staff_id', sa.String(length=64), nullable=False),
    sa.Column('hub_code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('lead', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['hub_code'], ['hubs.code'], ),
    sa.PrimaryKeyConstraint('staff_id')
    )
    op.create_index('ix_staff_hub_role', 'staff', ['hub_code', 'role'], unique=False)
    op.create_table('tasks',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('prison_number', sa.String(length=7), nullable=False),
    sa.Column('need', sa.String(length=64), nullable=False),
    sa.Column('pathway', sa.String(length=64), nullable=False),
    sa.Column('rule_id', sa.String(length=64), nullable=False),
    sa.Column('hub_code', sa.String(length=32), nullable=True),
    sa.Column('owner_role', sa.String(length=32), nullable=False),
    sa.Column('owner_staff_id', sa.String(length=64), nullable=True),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('historical', sa.Boolean(), nullable=False),
    sa.Column('routing', sa.String(length=500), nullable=False),
    sa.Column('release_date', sa.Date(), nullable=True),
    sa.Column('pre_release', sa.Boolean(), nullable=False),
    sa.Column('prison', sa.String(length=32), nullable=True),
    sa.Column('local_authority', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=200), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_reason', sa.String(length=500), nullable=True),
    sa.Column('urgent_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('active_key', sa.String(length=80), nullable=True),
    sa.ForeignKeyConstraint(['hub_code'], ['hubs.code'], ),
    sa.ForeignKeyConstraint(['owner_staff_id'], ['staff.staff_id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('active_key')
    )
    op.create_index(op.f('ix_tasks_due_at'), 'tasks', ['due_at'], unique=False)
    op.create_index(op.f('ix_tasks_hub_code'), 'tasks', ['hub_code'], unique=False)
    op.create_index(op.f('ix_tasks_prison_number'), 'tasks', ['prison_number'], unique=False)
    op.create_index(op.f('ix_tasks_status'), 'tasks', ['status'], unique=False)
    op.create_table('task_alerts',
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('alert_id', sa.String(length=36), nullable=False),
    sa.Column('rule_id', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.Column('last_event_id', sa.String(length=36), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ),
    sa.PrimaryKeyConstraint('task_id', 'alert_id')
    )
    op.create_index(op.f('ix_task_alerts_alert_id'), 'task_alerts', ['alert_id'], unique=False)
    op.create_table('task_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), server_default='', nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_task_history_task_id'), 'task_history', ['task_id'], unique=False)
    # APScheduler's SQLAlchemyJobStore table, created here so the schema has one owner; the job
    # store's own create(checkfirst=True) then finds it.
    op.create_table('apscheduler_jobs',
    sa.Column('id', sa.Unicode(191), nullable=False),
    sa.Column('next_run_time', sa.Float(25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_apscheduler_jobs_next_run_time', 'apscheduler_jobs', ['next_run_time'])


def downgrade() -> None:
    op.drop_index('ix_apscheduler_jobs_next_run_time', table_name='apscheduler_jobs')
    op.drop_table('apscheduler_jobs')
    op.drop_table('task_history')
    op.drop_table('task_alerts')
    op.drop_table('tasks')
    op.drop_table('staff')
    op.drop_table('prison_omus')
    op.drop_table('hub_areas')
    op.drop_table('task_digests')
    op.drop_index(op.f('ix_task_outbox_sent_at'), table_name='task_outbox')
    op.drop_index(op.f('ix_task_outbox_created_at'), table_name='task_outbox')
    op.drop_table('task_outbox')
    op.drop_table('scheduler_leases')
    op.drop_table('processed_events')
    op.drop_table('hubs')
