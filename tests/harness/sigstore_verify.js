// An independent verifier for the test fixtures: @sigstore/verify checks each bundle (a key
// hint resolved to the given public key, or a keyless bundle against the given trusted root).
// stdin: [{"bundle": {...}, "artifact": base64 | null, "publicKey": PEM | null, "trustedRoot": {...} | null}]
// stdout: ["ok" | "error: ...", ...]
'use strict';
const crypto = require('crypto');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');

function one(job) {
  const bundle = bundleFromJSON(job.bundle);
  const root = TrustedRoot.fromJSON(job.trustedRoot || { tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] });
  const keys = job.publicKey
    ? () => ({ publicKey: crypto.createPublicKey(job.publicKey), validFor: () => true })
    : undefined;
  const material = toTrustMaterial(root, keys);
  const keyless = !job.publicKey;
  const verifier = new Verifier(material, { tlogThreshold: keyless ? 1 : 0, ctlogThreshold: 0, timestampThreshold: keyless ? 1 : 0 });
  const artifact = job.artifact ? Buffer.from(job.artifact, 'base64') : undefined;
  verifier.verify(toSignedEntity(bundle, artifact));
  return 'ok';
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const out = JSON.parse(Buffer.concat(chunks).toString()).map((job) => {
    try {
      return one(job);
    } catch (err) {
      return `error: ${err.code || ''} ${err.message}`;
    }
  });
  process.stdout.write(JSON.stringify(out));
}

main();
