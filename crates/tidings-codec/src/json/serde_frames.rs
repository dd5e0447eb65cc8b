//! The generic serde path of the JSON codec: every frame to and from one flat object of optional fields (`WireOut` / `WireIn`) through `serde_json`.
//!
//! This path defines the wire bytes and the errors of `tidings.v1.json`; the
//! hand-written paths (`json::encode`, `json::decode`) give the same result
//! wherever they answer, and hand everything else to [`encode`] / [`decode`].

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tidings_protocol::{
    Ack, ChannelName, ChannelPosition, Close, CodecError, ErrorCode, ErrorFrame, Frame, Gap, Hello,
    Message, MessageId, Ping, Publish, PublishAck, Publisher, ResumeToken, RpcCode, RpcFault,
    RpcFrame, RpcKind, SessionId, Subscribe, Subscribed, Unsubscribe, Welcome,
};

use super::inline_json;

#[derive(Deserialize)]
struct PositionIn<'a> {
    #[serde(borrow)]
    channel: Cow<'a, str>,
    seq: u64,
}

#[derive(Deserialize)]
struct WireIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    channel: Option<Str<'a>>,
    seq: Option<u64>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    /// `Some` whenever the field is present, even as `null` (a valid JSON payload).
    #[serde(borrow, default, deserialize_with = "present_raw")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data_b64: Option<Str<'a>>,
    version: Option<u32>,
    #[serde(borrow, default)]
    resume: Option<Str<'a>>,
    #[serde(borrow, default)]
    positions: Option<Vec<PositionIn<'a>>>,
    #[serde(borrow, default)]
    publisher: Option<Str<'a>>,
    publish_base: Option<u64>,
    #[serde(borrow, default)]
    session: Option<Str<'a>>,
    #[serde(borrow, default)]
    resume_token: Option<Str<'a>>,
    resumed: Option<bool>,
    heartbeat_ms: Option<u64>,
    max_frame: Option<u32>,
    publish_acked: Option<u64>,
    after: Option<u64>,
    from: Option<u64>,
    to: Option<u64>,
    nonce: Option<u64>,
    #[serde(borrow, default)]
    code: Option<CodeIn<'a>>,
    #[serde(borrow, default)]
    message: Option<Str<'a>>,
    #[serde(borrow, default)]
    reason: Option<Str<'a>>,
    call: Option<u64>,
    #[serde(borrow, default)]
    method: Option<Str<'a>>,
    deadline_ms: Option<u64>,
    credit: Option<u32>,
    n: Option<u32>,
}

/// A JSON string that borrows from the input when it has no escapes
/// (serde's own `Cow` always copies when it sits inside an `Option`).
struct Str<'a>(Cow<'a, str>);

impl Str<'_> {
    fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit(std::marker::PhantomData))
    }
}

/// Deserializes a present `data` field as `Some(raw)`, so that `"data":null`
/// is the payload `null` and not a missing field (plain `Option` maps `null` to `None`).
fn present_raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

/// `code` is a string on `error` frames and a number on `close` frames.
#[derive(Deserialize)]
#[serde(untagged)]
enum CodeIn<'a> {
    Num(u16),
    #[serde(borrow)]
    Str(Cow<'a, str>),
}

#[derive(Serialize, Default)]
struct WireOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resume: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    positions: Option<Vec<PositionOut<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    publisher: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    publish_base: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resume_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resumed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_frame: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    publish_acked: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<CodeOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
}

#[derive(Serialize)]
struct PositionOut<'a> {
    channel: &'a str,
    seq: u64,
}

#[derive(Serialize)]
#[serde(untagged)]
enum CodeOut {
    Num(u16),
    Str(&'static str),
}

fn malformed(reason: impl Into<String>) -> CodecError {
    CodecError::Malformed {
        reason: reason.into(),
    }
}

fn need<T>(v: Option<T>, field: &str, kind: &str) -> Result<T, CodecError> {
    v.ok_or_else(|| malformed(format!("`{kind}` frame is missing field `{field}`")))
}

fn channel(v: Option<Str<'_>>, kind: &str) -> Result<ChannelName, CodecError> {
    let name = need(v, "channel", kind)?;
    ChannelName::new(&*name).map_err(|e| malformed(e.to_string()))
}

fn payload_out<'a>(payload: &'a Bytes, out: &mut WireOut<'a>) {
    // The serializer writes raw JSON only from a `&RawValue`, which only
    // serde_json can make: parse the (already validated) text once more.
    // Only frames that `json::encode` hands over pay for it.
    match inline_json(payload).and_then(|text| serde_json::from_str::<&RawValue>(text).ok()) {
        Some(raw) => out.data = Some(raw),
        None => out.data_b64 = Some(BASE64.encode(payload)),
    }
}

fn payload_in(input: &Bytes, w: &WireIn<'_>, kind: &str) -> Result<Bytes, CodecError> {
    match (&w.data, &w.data_b64) {
        (Some(raw), None) => Ok(input.slice_ref(raw.get().as_bytes())),
        (None, Some(b64)) => BASE64
            .decode(b64.as_bytes())
            .map(Bytes::from)
            .map_err(|e| malformed(format!("`data_b64` is not base64: {e}"))),
        (Some(_), Some(_)) => Err(malformed(format!(
            "`{kind}` frame has both `data` and `data_b64`"
        ))),
        (None, None) => Err(malformed(format!("`{kind}` frame is missing field `data`"))),
    }
}

/// Encodes `frame` (a `WireOut` through `serde_json`), appending to `out`:
/// `JsonCodec::encode_serde`.
pub(super) fn encode(frame: &Frame, out: &mut BytesMut) -> Result<(), CodecError> {
    let mut w = WireOut::default();
    let positions;
    match frame {
        Frame::Hello(h) => {
            w.kind = "hello";
            w.version = Some(h.version);
            w.resume = h.resume.as_ref().map(|t| t.0.as_str());
            positions = h
                .positions
                .iter()
                .map(|p| PositionOut {
                    channel: p.channel.as_str(),
                    seq: p.seq,
                })
                .collect();
            w.positions = Some(positions);
            w.publisher = h.publisher.as_ref().map(|p| p.id());
            w.publish_base = h.publisher.as_ref().map(|p| p.base);
        }
        Frame::Welcome(x) => {
            w.kind = "welcome";
            w.version = Some(x.version);
            w.session = Some(&x.session.0);
            w.resume_token = Some(&x.resume_token.0);
            w.resumed = Some(x.resumed);
            w.heartbeat_ms = Some(x.heartbeat_ms);
            w.max_frame = Some(x.max_frame);
            w.publish_acked = Some(x.publish_acked);
        }
        Frame::Publish(p) => {
            w.kind = "publish";
            w.channel = Some(p.channel.as_str());
            w.seq = Some(p.seq);
            payload_out(&p.payload, &mut w);
        }
        Frame::Message(m) => {
            w.kind = "message";
            w.channel = Some(m.channel.as_str());
            w.seq = Some(m.seq);
            w.id = Some(m.id);
            payload_out(&m.payload, &mut w);
        }
        Frame::Ack(a) => {
            w.kind = "ack";
            w.channel = Some(a.channel.as_str());
            w.seq = Some(a.seq);
        }
        Frame::PublishAck(a) => {
            w.kind = "publish_ack";
            w.seq = Some(a.seq);
        }
        Frame::Subscribe(s) => {
            w.kind = "subscribe";
            w.channel = Some(s.channel.as_str());
            w.after = s.after;
        }
        Frame::Subscribed(s) => {
            w.kind = "subscribed";
            w.channel = Some(s.channel.as_str());
            w.seq = Some(s.seq);
        }
        Frame::Unsubscribe(u) => {
            w.kind = "unsubscribe";
            w.channel = Some(u.channel.as_str());
        }
        Frame::Gap(g) => {
            w.kind = "gap";
            w.channel = Some(g.channel.as_str());
            w.from = Some(g.from);
            w.to = Some(g.to);
        }
        Frame::Ping(p) => {
            w.kind = "ping";
            w.nonce = Some(p.nonce);
        }
        Frame::Pong(p) => {
            w.kind = "pong";
            w.nonce = Some(p.nonce);
        }
        Frame::Error(e) => {
            w.kind = "error";
            w.code = Some(CodeOut::Str(e.code.as_str()));
            w.message = Some(&e.message);
            w.seq = e.publish;
        }
        Frame::Close(c) => {
            w.kind = "close";
            w.code = Some(CodeOut::Num(c.code));
            w.reason = Some(&c.reason);
        }
        Frame::Rpc(r) => {
            w.call = Some(r.call);
            match &r.kind {
                RpcKind::Call {
                    method,
                    params,
                    deadline_ms,
                    credit,
                } => {
                    w.kind = "call";
                    w.method = Some(method);
                    w.deadline_ms = *deadline_ms;
                    w.credit = Some(*credit);
                    payload_out(params, &mut w);
                }
                RpcKind::Reply(Ok(result)) => {
                    w.kind = "reply";
                    payload_out(result, &mut w);
                }
                RpcKind::Reply(Err(fault)) => {
                    w.kind = "reply";
                    w.code = Some(CodeOut::Str(fault.code.as_str()));
                    w.message = Some(&fault.message);
                    if let Some(data) = &fault.data {
                        payload_out(data, &mut w);
                    }
                }
                RpcKind::Item { seq, payload } => {
                    w.kind = "item";
                    w.seq = Some(*seq);
                    payload_out(payload, &mut w);
                }
                RpcKind::End => w.kind = "end",
                RpcKind::Credit { n } => {
                    w.kind = "credit";
                    w.n = Some(*n);
                }
                RpcKind::Cancel { reason } => {
                    w.kind = "cancel";
                    w.reason = Some(reason);
                }
                _ => {
                    return Err(CodecError::Unencodable {
                        reason: "this RPC frame has no JSON form yet".into(),
                    });
                }
            }
        }
        other => {
            return Err(CodecError::Unencodable {
                reason: format!("{:?} frames have no JSON form yet", other.frame_type()),
            });
        }
    }
    serde_json::to_writer(out.writer(), &w).map_err(|e| CodecError::Unencodable {
        reason: e.to_string(),
    })
}

/// Decodes `input` (a `WireIn` through `serde_json`): `JsonCodec::decode_serde`.
pub(super) fn decode(input: &Bytes) -> Result<Frame, CodecError> {
    let w: WireIn<'_> = serde_json::from_slice(input).map_err(|e| malformed(e.to_string()))?;
    let kind = &*w.kind;
    let frame = match kind {
        "hello" => Frame::Hello(Hello {
            version: need(w.version, "version", kind)?,
            resume: w.resume.map(|t| ResumeToken(t.into_owned())),
            positions: w
                .positions
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    Ok(ChannelPosition {
                        channel: ChannelName::new(&*p.channel)
                            .map_err(|e| malformed(e.to_string()))?,
                        seq: p.seq,
                    })
                })
                .collect::<Result<_, CodecError>>()?,
            publisher: match w.publisher {
                Some(id) => Some(
                    Publisher::new(&id.0, w.publish_base.unwrap_or(0))
                        .map_err(|e| malformed(e.to_string()))?,
                ),
                None => None,
            },
        }),
        "welcome" => Frame::Welcome(Welcome {
            version: need(w.version, "version", kind)?,
            session: SessionId(need(w.session, "session", kind)?.into_owned()),
            resume_token: ResumeToken(need(w.resume_token, "resume_token", kind)?.into_owned()),
            resumed: w.resumed.unwrap_or(false),
            heartbeat_ms: need(w.heartbeat_ms, "heartbeat_ms", kind)?,
            max_frame: need(w.max_frame, "max_frame", kind)?,
            publish_acked: w.publish_acked.unwrap_or(0),
        }),
        "publish" => Frame::Publish(Publish {
            payload: payload_in(input, &w, kind)?,
            channel: channel(w.channel, kind)?,
            seq: need(w.seq, "seq", kind)?,
        }),
        "message" => Frame::Message(Message {
            payload: payload_in(input, &w, kind)?,
            channel: channel(w.channel, kind)?,
            seq: need(w.seq, "seq", kind)?,
            id: MessageId(
                need(w.id, "id", kind)?
                    .parse()
                    .map_err(|_| malformed("`id` must be a decimal u64 string"))?,
            ),
        }),
        "ack" => Frame::Ack(Ack {
            channel: channel(w.channel, kind)?,
            seq: need(w.seq, "seq", kind)?,
        }),
        "publish_ack" => Frame::PublishAck(PublishAck {
            seq: need(w.seq, "seq", kind)?,
        }),
        "subscribe" => Frame::Subscribe(Subscribe {
            channel: channel(w.channel, kind)?,
            after: w.after,
        }),
        "subscribed" => Frame::Subscribed(Subscribed {
            channel: channel(w.channel, kind)?,
            seq: need(w.seq, "seq", kind)?,
        }),
        "unsubscribe" => Frame::Unsubscribe(Unsubscribe {
            channel: channel(w.channel, kind)?,
        }),
        "gap" => {
            let (from, to) = (need(w.from, "from", kind)?, need(w.to, "to", kind)?);
            if from == 0 || from > to {
                return Err(malformed(format!(
                    "gap range {from}..={to} is empty or starts at 0"
                )));
            }
            Frame::Gap(Gap {
                channel: channel(w.channel, kind)?,
                from,
                to,
            })
        }
        "ping" => Frame::Ping(Ping {
            nonce: w.nonce.unwrap_or(0),
        }),
        "pong" => Frame::Pong(Ping {
            nonce: w.nonce.unwrap_or(0),
        }),
        "error" => Frame::Error(ErrorFrame {
            code: match need(w.code, "code", kind)? {
                CodeIn::Str(s) => ErrorCode::parse(&s),
                CodeIn::Num(_) => ErrorCode::Unknown,
            },
            message: w.message.map(Str::into_owned).unwrap_or_default(),
            publish: w.seq,
        }),
        "close" => Frame::Close(Close {
            code: match w.code {
                Some(CodeIn::Num(n)) => n,
                Some(CodeIn::Str(_)) => return Err(malformed("`close` code must be a number")),
                None => 1000,
            },
            reason: w.reason.map(Str::into_owned).unwrap_or_default(),
        }),
        "call" | "reply" | "item" | "end" | "credit" | "cancel" => rpc_in(input, w)?,
        other => {
            return Err(CodecError::UnknownFrameType {
                name: other.chars().take(64).collect(),
            });
        }
    };
    Ok(frame)
}

/// Decodes the RPC frames (`call`, `reply`, `item`, `end`, `credit`, `cancel`).
fn rpc_in(input: &Bytes, w: WireIn<'_>) -> Result<Frame, CodecError> {
    let kind = &*w.kind;
    let call = need(w.call, "call", kind)?;
    let kind = match kind {
        "call" => RpcKind::Call {
            params: payload_in(input, &w, kind)?,
            method: need(w.method, "method", kind)?.into_owned(),
            deadline_ms: w.deadline_ms,
            credit: w.credit.unwrap_or(0),
        },
        "reply" => match &w.code {
            Some(CodeIn::Str(code)) => {
                let data = match (&w.data, &w.data_b64) {
                    (None, None) => None,
                    _ => Some(payload_in(input, &w, kind)?),
                };
                RpcKind::Reply(Err(RpcFault {
                    code: RpcCode::parse(code),
                    message: w.message.as_deref().unwrap_or_default().to_owned(),
                    data,
                }))
            }
            Some(CodeIn::Num(_)) => return Err(malformed("`reply` code must be a string")),
            None => RpcKind::Reply(Ok(payload_in(input, &w, kind)?)),
        },
        "item" => RpcKind::Item {
            payload: payload_in(input, &w, kind)?,
            seq: need(w.seq, "seq", kind)?,
        },
        "end" => RpcKind::End,
        "credit" => RpcKind::Credit {
            n: need(w.n, "n", kind)?,
        },
        _ => RpcKind::Cancel {
            reason: w.reason.map(Str::into_owned).unwrap_or_default(),
        },
    };
    Ok(Frame::Rpc(RpcFrame { call, kind }))
}
