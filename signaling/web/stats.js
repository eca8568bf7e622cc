// A summary of the page's RTCPeerConnection statistics (`window.mcu.stats()`): what is decoded
// from whom, and what is sent, for tests and diagnostics.

/** The MIME type ("video/VP8") of an RTP stats entry's codec, or null. */
function codecOf(report, rtpStats) {
  return rtpStats.codecId ? (report.get(rtpStats.codecId)?.mimeType ?? null) : null;
}

/**
 * The inbound RTP streams of one receiving connection. `describeMid(mid)` says what a section
 * carries now (`{track_id, participant_id, source}`), or undefined for one that carries nothing.
 */
async function inboundOf(pc, describeMid) {
  const midOfTrack = new Map();
  for (const transceiver of pc.getTransceivers()) {
    if (transceiver.receiver.track) {
      midOfTrack.set(transceiver.receiver.track.id, transceiver.mid);
    }
  }
  const out = [];
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type !== "inbound-rtp") {
      return;
    }
    const mid = s.mid ?? midOfTrack.get(s.trackIdentifier) ?? null;
    const carried = describeMid(mid);
    out.push({
      kind: s.kind ?? s.mediaType,
      codec: codecOf(report, s),
      framesDecoded: s.framesDecoded ?? 0,
      frameWidth: s.frameWidth ?? null,
      frameHeight: s.frameHeight ?? null,
      framesPerSecond: s.framesPerSecond ?? null,
      packetsReceived: s.packetsReceived ?? 0,
      bytesReceived: s.bytesReceived ?? 0,
      // How the stream fares on a lossy link: what went missing, what was asked again
      // (NACK) or replaced by a keyframe (PLI/FIR), and what the person noticed (video freezes;
      // audio samples the decoder had to invent).
      packetsLost: s.packetsLost ?? 0,
      nackCount: s.nackCount ?? 0,
      pliCount: s.pliCount ?? 0,
      firCount: s.firCount ?? 0,
      keyFramesDecoded: s.keyFramesDecoded ?? 0,
      freezeCount: s.freezeCount ?? 0,
      totalFreezesDuration: s.totalFreezesDuration ?? 0,
      concealedSamples: s.concealedSamples ?? 0,
      totalSamplesReceived: s.totalSamplesReceived ?? 0,
      // Audio packets the decoder rebuilt from redundancy: Opus in-band FEC and RED copies.
      fecPacketsReceived: s.fecPacketsReceived ?? 0,
      trackIdentifier: s.trackIdentifier ?? null,
      mid,
      // Who sends it and what it is (camera or content); null for a section that carries
      // nothing now (an ended track, a stage slot left empty).
      trackId: carried?.track_id ?? null,
      participantId: carried?.participant_id ?? null,
      source: carried?.source ?? null,
    });
  });
  return out;
}

/** The outbound RTP streams of the publish connection; `sourceOfMid(mid)` names the source. */
async function outboundOf(pc, sourceOfMid) {
  const out = [];
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type === "outbound-rtp") {
      out.push({
        kind: s.kind ?? s.mediaType,
        codec: codecOf(report, s),
        packetsSent: s.packetsSent ?? 0,
        framesEncoded: s.framesEncoded ?? 0,
        // The server's requests for repair: resent packets and keyframes.
        nackCount: s.nackCount ?? 0,
        pliCount: s.pliCount ?? 0,
        retransmittedPacketsSent: s.retransmittedPacketsSent ?? 0,
        keyFramesEncoded: s.keyFramesEncoded ?? 0,
        bytesSent: s.bytesSent ?? 0,
        // What the sender's congestion control allows, and what holds the picture back
        // ("bandwidth", "cpu" or "none").
        targetBitrate: s.targetBitrate ?? null,
        qualityLimitationReason: s.qualityLimitationReason ?? null,
        frameWidth: s.frameWidth ?? null,
        frameHeight: s.frameHeight ?? null,
        mid: s.mid ?? null,
        source: sourceOfMid(s.mid),
      });
    }
  });
  return out;
}

/**
 * How a connection reaches the server, from its selected ICE candidate pair: `{local, remote,
 * protocol, relayProtocol}` (`local` "relay" when it goes through a TURN relay, `relayProtocol`
 * then "udp", "tcp" or "tls" to the relay), or null before a pair is selected.
 */
async function routeOf(pc) {
  const report = await pc.getStats();
  let route = null;
  report.forEach((s) => {
    if (s.type !== "transport" || !s.selectedCandidatePairId) {
      return;
    }
    const pair = report.get(s.selectedCandidatePairId);
    const local = pair ? report.get(pair.localCandidateId) : undefined;
    const remote = pair ? report.get(pair.remoteCandidateId) : undefined;
    route = {
      local: local?.candidateType ?? null,
      remote: remote?.candidateType ?? null,
      protocol: local?.protocol ?? null,
      relayProtocol: local?.relayProtocol ?? null,
    };
  });
  return route;
}

/**
 * `receivers`: `[{pc, describeMid}]` (the subscribe connection, a WHEP session); `publish`: the
 * PublishConnection or null. Returns `{inbound, outbound, routes}`, `routes` the `routeOf`
 * each connection (receivers first, then the publish connection).
 */
export async function collectStats(receivers, publish) {
  const inbound = [];
  const routes = [];
  for (const { pc, describeMid } of receivers) {
    inbound.push(...(await inboundOf(pc, describeMid)));
    routes.push(await routeOf(pc));
  }
  const sourceOfMid = (mid) => {
    for (const [source, transceiver] of publish?.transceivers ?? []) {
      if (transceiver.mid === mid) {
        return source;
      }
    }
    return null;
  };
  const outbound = publish !== null ? await outboundOf(publish.pc, sourceOfMid) : [];
  if (publish !== null) {
    routes.push(await routeOf(publish.pc));
  }
  return { inbound, outbound, routes };
}
