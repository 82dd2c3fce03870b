from pydantic import SecretStr

from infra.config import Settings
from streams.app import broker_credentials, make_app


def _settings(**kw) -> Settings:
    return Settings(_env_file=None, kafka_bootstrap="h1:9092,h2:9092", **kw)


def test_app_takes_its_configuration_from_settings(tmp_path) -> None:
    s = _settings(topic_prefix="x.", topic_partitions=4, kafka_session_timeout_ms=3000,
                  faust_datadir=tmp_path)
    app = make_app(s)
    assert app.conf.id == "x.stream-worker"
    assert [str(u) for u in app.conf.broker] == ["kafka://h1:9092", "kafka://h2:9092"]
    assert app.conf.topic_partitions == 4
    assert app.conf.broker_session_timeout == 3.0
    assert not app.conf.web_enabled
    assert broker_credentials(s) is None


def test_sasl_and_ssl_credentials_follow_the_kafka_settings() -> None:
    sasl = broker_credentials(_settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc", kafka_sasl_password=SecretStr("pw")))
    assert sasl.protocol.value == "SASL_SSL" and sasl.username == "svc"
    assert sasl.password == "pw" and sasl.mechanism.value == "SCRAM-SHA-512"
    assert broker_credentials(_settings(kafka_security_protocol="SSL")).protocol.value == "SSL"
