"""Text reminders and notifications (issue 5): the right message, once, at a decent hour.

Data flows one way: input events -> notification facts (:mod:`.consumer`, tables in
``infra.models.messages``) -> the reminders that should exist (:mod:`.planner`, pure) -> the
reminders table (:mod:`.store`) -> texts (:mod:`.dispatch` through a :class:`.sender.SmsBackend`)
-> delivery status and replies (:mod:`.webhooks`). Reminder changes go to the reminders topic
(:mod:`.events`); problems become ``notification_issues`` and, when the tasks area is present,
tasks (:mod:`.issues`). Wording lives only in :mod:`.templates`.

Running: ``ttg notify`` (a service in ``ttg up``) runs the consumer, its own APScheduler
(:mod:`scheduler.reminders`) and the reminder-event publisher. With no Twilio account configured
texts go to the ``sms_outbox`` table (``ttg outbox list``). Settings (``TTG_`` prefix):
``twilio_account_sid``, ``twilio_auth_token``, ``twilio_from_number`` or
``twilio_messaging_service_sid``, ``twilio_base_url`` (tests), ``hub_public_url`` (webhook URLs
and signature checks), ``sms_allow_list`` (outside production only these numbers get texts),
``quiet_hours_start``/``quiet_hours_end``, ``timezone``, ``sms_evening_before_time``,
``sms_hours_before``, ``sms_max_attempts``, ``sms_retry_base_seconds``,
``sms_dispatch_interval_seconds``, ``twilio_timeout_seconds``, ``notify_consumer_group``,
``notify_jobs_table``.
"""
