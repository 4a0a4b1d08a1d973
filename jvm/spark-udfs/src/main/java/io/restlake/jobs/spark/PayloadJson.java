package io.restlake.jobs.spark;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import java.io.IOException;
import java.util.Arrays;
import org.apache.spark.sql.api.java.UDF1;

/**
 * The envelope's {@code payload} value exactly as the producer wrote it: a Kafka record's bytes in,
 * the bytes of its {@code payload} member out, without parsing the value into a tree or writing it
 * again.
 *
 * <p>The stream job used to take the payload's text back out of a VARIANT with {@code to_json},
 * whose string escaping builds a new JSON generator factory for every string it writes: a fifth of
 * the executors' time in a profile. Slicing keeps the producer's key order and number spelling too
 * ({@code 1.10} stays {@code 1.10}; a VARIANT sorts keys and normalises numbers).
 *
 * <p>NULL means "not sure, use the slow path": the record is not one strict JSON object (Spark's own
 * parser accepts single quotes and NaN, which Postgres's jsonb does not), it has no {@code payload}
 * or two of them, a key is repeated within one object, or the slice holds something jsonb refuses
 * although JSON allows it: an unpaired UTF-16 surrogate escape or the NUL escape. Bytes that are not valid UTF-8, and
 * control characters inside strings, also give NULL. The caller then falls back to the VARIANT's
 * text, as before.
 */
public final class PayloadJson implements UDF1<byte[], byte[]> {
  private static final long serialVersionUID = 1L;
  private static final String FIELD = "payload";
  // Default features are strict JSON: no comments, no single quotes, no NaN, no trailing commas.
  // A key twice in one object is refused too: Spark's VARIANT refuses it (the record is then
  // malformed), and the stream job may take a sliced payload without ever building the VARIANT.
  private static final JsonFactory FACTORY =
      JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

  @Override
  public byte[] call(byte[] value) {
    if (value == null) {
      return null;
    }
    try (JsonParser parser = FACTORY.createParser(value)) {
      if (parser.nextToken() != JsonToken.START_OBJECT) {
        return null;
      }
      long start = -1;
      long end = -1;
      JsonToken token;
      while ((token = parser.nextToken()) == JsonToken.FIELD_NAME) {
        boolean isPayload = FIELD.equals(parser.currentName());
        parser.nextToken();
        if (isPayload) {
          if (start >= 0) {
            return null; // which of two payloads counts is the envelope parser's call, not ours
          }
          start = parser.currentTokenLocation().getByteOffset();
        }
        parser.skipChildren();
        if (isPayload) {
          // A string's body is read lazily; finish it so the position is past its closing quote.
          parser.finishToken();
          end = parser.currentLocation().getByteOffset();
        }
      }
      if (token != JsonToken.END_OBJECT || start < 0 || parser.nextToken() != null) {
        return null;
      }
      if (start > Integer.MAX_VALUE || end > value.length || end <= start) {
        return null;
      }
      return jsonbSafe(value, (int) start, (int) end) ? Arrays.copyOfRange(value, (int) start, (int) end) : null;
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }

  /**
   * Whether {@code bytes[from, to)} is valid UTF-8 with no raw control character inside a string and
   * no unpaired surrogate or NUL escape. Skipping a subtree does not decode its strings, so the
   * parser above has not checked these.
   *
   * <p>Runs of plain ASCII inside a string, most of a record, are crossed by a tight loop that
   * stops only at a quote, a backslash, a control character or a non-ASCII byte (a signed byte
   * below 0x20); the checks run at those bytes alone.
   */
  static boolean jsonbSafe(byte[] bytes, int from, int to) {
    boolean inString = false;
    boolean wantLow = false; // the previous escape was a high surrogate
    int i = from;
    while (i < to) {
      if (inString && !wantLow) {
        byte c;
        while (i < to && (c = bytes[i]) >= 0x20 && c != '"' && c != '\\') {
          i++;
        }
        if (i >= to) {
          return false; // the string is not closed
        }
      }
      int b = bytes[i] & 0xFF;
      if (b >= 0x80) {
        int n = utf8Length(bytes, i, to);
        if (n < 0 || wantLow) {
          return false;
        }
        i += n;
        continue;
      }
      if (!inString) {
        if (b == '"') {
          inString = true;
        } else if (b < 0x20 && b != ' ' && b != '\t' && b != '\n' && b != '\r') {
          return false;
        }
        i++;
        continue;
      }
      if (b < 0x20) {
        return false;
      }
      if (b == '"') {
        if (wantLow) {
          return false;
        }
        inString = false;
        i++;
        continue;
      }
      if (b != '\\') {
        if (wantLow) {
          return false;
        }
        i++;
        continue;
      }
      if (i + 1 >= to) {
        return false;
      }
      if (bytes[i + 1] != 'u') {
        if (wantLow) {
          return false;
        }
        i += 2;
        continue;
      }
      if (i + 6 > to) {
        return false;
      }
      int unit = hex4(bytes, i + 2);
      // jsonb refuses the NUL escape: such a payload is quarantined (nul_character), and the
      // caller looks for it only in the payloads refused here.
      if (unit <= 0) {
        return false;
      }
      boolean high = unit >= 0xD800 && unit <= 0xDBFF;
      boolean low = unit >= 0xDC00 && unit <= 0xDFFF;
      if (wantLow != low) {
        return false;
      }
      wantLow = high;
      i += 6;
    }
    return !inString && !wantLow;
  }

  private static int hex4(byte[] bytes, int at) {
    int unit = 0;
    for (int k = 0; k < 4; k++) {
      int digit = Character.digit(bytes[at + k], 16);
      if (digit < 0) {
        return -1;
      }
      unit = (unit << 4) | digit;
    }
    return unit;
  }

  /** The length of the well-formed UTF-8 sequence at {@code i}, or -1 (RFC 3629, no surrogates). */
  private static int utf8Length(byte[] bytes, int i, int to) {
    int b = bytes[i] & 0xFF;
    int n;
    int min;
    int max;
    if (b >= 0xC2 && b <= 0xDF) {
      n = 2;
      min = 0x80;
      max = 0xBF;
    } else if (b == 0xE0) {
      n = 3;
      min = 0xA0;
      max = 0xBF;
    } else if (b == 0xED) {
      n = 3;
      min = 0x80;
      max = 0x9F;
    } else if (b >= 0xE1 && b <= 0xEF) {
      n = 3;
      min = 0x80;
      max = 0xBF;
    } else if (b == 0xF0) {
      n = 4;
      min = 0x90;
      max = 0xBF;
    } else if (b >= 0xF1 && b <= 0xF3) {
      n = 4;
      min = 0x80;
      max = 0xBF;
    } else if (b == 0xF4) {
      n = 4;
      min = 0x80;
      max = 0x8F;
    } else {
      return -1;
    }
    if (i + n > to) {
      return -1;
    }
    int second = bytes[i + 1] & 0xFF;
    if (second < min || second > max) {
      return -1;
    }
    for (int k = 2; k < n; k++) {
      int c = bytes[i + k] & 0xFF;
      if (c < 0x80 || c > 0xBF) {
        return -1;
      }
    }
    return n;
  }
}
