// hls.js's own reading of media playlists, for tests/media/test_playlist.py.
//
//   node tests/web/hlsjs_playlist.mjs CASES.json
//
// CASES.json: [{"bytes": base64, "base": URL}, ...]. Each case's bytes are decoded as a browser
// decodes a text response (TextDecoder: UTF-8, a BOM dropped, bad bytes replaced), then read by
// hls.js's M3U8Parser.parseLevelPlaylist (exported by its ESM build, unpatched). Prints one JSON
// array: for each case, the parsing error or null, whether it ended, and every fragment (media
// sequence number, discontinuity counter, duration, URL as hls.js builds it and as the browser's
// URL parser then normalises it, byte range) with its init segment.

import { readFileSync } from 'node:fs';
import { M3U8Parser } from '../../src/segbind/web/node_modules/hls.js/dist/hls.mjs';

function href(url) {
  try {
    return new URL(url).href;
  } catch {
    return null;
  }
}

function part(fragment) {
  if (!fragment) {
    return null;
  }
  const range = fragment.byteRange;
  return {
    url: fragment.url,
    href: href(fragment.url),
    range: range.length === 2 ? [range[0], range[1]] : null,
  };
}

const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = cases.map(({ bytes, base }) => {
  const text = new TextDecoder('utf-8').decode(Buffer.from(bytes, 'base64'));
  let details;
  try {
    details = M3U8Parser.parseLevelPlaylist(text, base, 0, 'main', 0, null);
  } catch (error) {
    return { error: 'threw: ' + error.message, ended: false, fragments: [] };
  }
  return {
    error: details.playlistParsingError ? details.playlistParsingError.message.split('\n')[0] : null,
    ended: !details.live,
    fragments: details.fragments.map((fragment) =>
      fragment === null
        ? null
        : {
            sn: fragment.sn,
            cc: fragment.cc,
            duration: fragment.duration,
            gap: Boolean(fragment.gap),
            ...part(fragment),
            init: part(fragment.initSegment),
          },
    ),
  };
});
process.stdout.write(JSON.stringify(out));
