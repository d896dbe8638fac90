"""sms-cli: a bulk SMS sender for uSpeedo, Tencent Cloud and Alibaba Cloud."""

__version__ = "0.1.0"
