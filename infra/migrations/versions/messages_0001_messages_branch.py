"""messages branch: notification facts, texts and their history, outbox, inbound, issues

Revision ID: messages_0001
Revises:
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "messages_0001"
down_revision = None
branch_labels = ("messages",)
depends_on = None


def upgrade() -> None:
    op.create_table('notification_issues',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issue_key', sa.String(length=200), nullable=False),
    sa.Column('prison_number', sa.String(length=7), nullable=True),
    sa.Column('owner_role', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('reminder_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('issue_key')
    )
    op.create_index(op.f('ix_notification_issues_prison_number'), 'notification_issues', ['prison_number'], unique=False)
    op.create_table('notify_appointments',
    sa.Column('prison_number', sa.String(length=7), nullable=False),
    sa.Column('appointment_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('place', sa.String(length=500), nullable=True),
    sa.Column('with_whom', sa.String(length=500), nullable=True),
    sa.Column('owner_role', sa.String(length=32), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('told_for', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('prison_number', 'appointment_id')
    )
    op.create_table('notify_people',
    sa.Column('prison_number', sa.String(length=7), nullable=False),
    sa.Column('mobile_e164', sa.String(length=20), nullable=True),
    sa.Column('mobile_invalid', sa.Boolean(), nullable=False),
    sa.Column('sms_consent', sa.Boolean(), nullable=True),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('custody', sa.String(length=24), nullable=False),
    sa.Column('release_date', sa.Date(), nullable=True),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('prison', sa.String(length=32), nullable=True),
    sa.Column('local_authority', sa.String(length=200), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('prison_number')
    )
    op.create_index(op.f('ix_notify_people_mobile_e164'), 'notify_people', ['mobile_e164'], unique=False)
    op.create_table('notify_processed_events',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_table('sms_inbound',
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('prison_number', sa.String(length=7), nullable=True),
    sa.Column('body', sa.Text(), server_default='', nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sid')
    )
    op.create_index(op.f('ix_sms_inbound_prison_number'), 'sms_inbound', ['prison_number'], unique=False)
    op.create_table('sms_outbox',
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('reminder_id', sa.String(length=36), nullable=True),
    sa.Column('prison_number', sa.String(length=7), nullable=True),
    sa.Column('to_e164', sa.String(length=20), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sid')
    )
    op.create_index(op.f('ix_sms_outbox_reminder_id'), 'sms_outbox', ['reminder_id'], unique=False)
    op.create_table('sms_reminders',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('audience', sa.String(length=8), nullable=False),
    sa.Column('prison_number', sa.String(length=7), nullable=True),
    sa.Column('staff_id', sa.String(length=64), nullable=True),
    sa.Column('appointment_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('send_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), server_default='', nullable=False),
    sa.Column('to_e164', sa.String(length=20), nullable=True),
    sa.Column('twilio_sid', sa.String(length=64), nullable=True),
    sa.Column('delivery_status', sa.String(length=16), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('request_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('detail', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key'),
    sa.UniqueConstraint('twilio_sid')
    )
    op.create_index(op.f('ix_sms_reminders_prison_number'), 'sms_reminders', ['prison_number'], unique=False)
    op.create_index(op.f('ix_sms_reminders_send_at'), 'sms_reminders', ['send_at'], unique=False)
    op.create_index(op.f('ix_sms_reminders_state'), 'sms_reminders', ['state'], unique=False)
    op.create_table('sms_reminder_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reminder_id', sa.String(length=36), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('delivery_status', sa.String(length=16), nullable=True),
    sa.Column('detail', sa.String(length=500), nullable=True),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['reminder_id'], ['sms_reminders.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_sms_reminder_history_published_at'), 'sms_reminder_history', ['published_at'], unique=False)
    op.create_index(op.f('ix_sms_reminder_history_reminder_id'), 'sms_reminder_history', ['reminder_id'], unique=False)
    # APScheduler's SQLAlchemyJobStore table for `ttg notify` (settings.notify_jobs_table), created
    # here so the schema has one owner; the job store's create(checkfirst=True) then finds it.
    op.create_table('notification_jobs',
    sa.Column('id', sa.Unicode(191), nullable=False),
    sa.Column('next_run_time', sa.Float(25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_notification_jobs_next_run_time', 'notification_jobs', ['next_run_time'])


def downgrade() -> None:
    op.drop_index('ix_notification_jobs_next_run_time', table_name='notification_jobs')
    op.drop_table('notification_jobs')
    op.drop_index(op.f('ix_sms_reminder_history_reminder_id'), table_name='sms_reminder_history')
    op.drop_index(op.f('ix_sms_reminder_history_published_at'), table_name='sms_reminder_history')
    op.drop_table('sms_reminder_history')
    op.drop_index(op.f('ix_sms_reminders_state'), table_name='sms_reminders')
    op.drop_index(op.f('ix_sms_reminders_send_at'), table_name='sms_reminders')
    op.drop_index(op.f('ix_sms_reminders_prison_number'), table_name='sms_reminders')
    op.drop_table('sms_reminders')
    op.drop_index(op.f('ix_sms_outbox_reminder_id'), table_name='sms_outbox')
    op.drop_table('sms_outbox')
    op.drop_index(op.f('ix_sms_inbound_prison_number'), table_name='sms_inbound')
    op.drop_table('sms_inbound')
    op.drop_table('notify_processed_events')
    op.drop_index(op.f('ix_notify_people_mobile_e164'), table_name='notify_people')
    op.drop_table('notify_people')
    op.drop_table('notify_appointments')
    op.drop_index(op.f('ix_notification_issues_prison_number'), table_name='notification_issues')
    op.drop_table('notification_issues')
