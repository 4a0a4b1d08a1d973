package io.restlake.jobs.spark;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import java.io.IOException;
import java.time.DateTimeException;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.Arrays;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF1;

/**
 * The whole event envelope in one pass over a Kafka record's bytes: its fields, and its {@code
 * payload} member's bytes exactly as the producer wrote them (as {@link PayloadJson} slices them).
 *
 * <p>The stream job used to parse each value twice: {@code from_json} for the envelope (Spark reads
 * it through a character decoder, field by field) and {@link PayloadJson} for the payload's bytes.
 * This reads the bytes once.
 *
 * <p>It is a fast path, not a second definition of the envelope: it answers only where its answer
 * is certainly the one {@code from_json} gives, and NULL otherwise, and the caller then asks {@code
 * from_json}. Certain means: one strict JSON object (no duplicate key anywhere), valid UTF-8 with
 * nothing jsonb refuses (see {@link PayloadJson#jsonbSafe}), every known field null or of its
 * declared JSON type (a string for text, an integer in range for int, an object for a struct), and
 * {@code fetched_at} written as {@code yyyy-MM-ddTHH:mm:ss[.f{1,6}](Z|±HH:MM)}. Unknown fields are
 * skipped, as {@code from_json} skips them. The field order is the Spark struct's the caller
 * registers (restlake.jobs.spark.envelope_schema.FAST_ENVELOPE_SCHEMA); the parity test compares
 * every column with {@code from_json}'s over a hostile corpus.
 */
public final class EnvelopeJson implements UDF1<byte[], Row> {
  private static final long serialVersionUID = 1L;
  private static final JsonFactory FACTORY =
      JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

  /** How a field's JSON value is read. */
  private enum Kind {
    TEXT,
    INTEGER,
    TIMESTAMP,
    REQUEST,
    PARENT,
    PAYLOAD
  }

  /** A struct's fields: names and kinds, in the order of the Spark struct the caller registers. */
  private static final class Struct {
    final String[] names;
    final Kind[] kinds;

    Struct(String[] names, Kind[] kinds) {
      this.names = names;
      this.kinds = kinds;
    }

    int indexOf(String name) {
      for (int i = 0; i < names.length; i++) {
        if (names[i].equals(name)) {
          return i;
        }
      }
      return -1;
    }
  }

  private static final Struct ENVELOPE =
      new Struct(
          new String[] {
            "envelope_version",
            "source",
            "external_id",
            "idempotency_key",
            "content_hash",
            "version",
            "fetched_at",
            "request",
            "parent",
            "payload"
          },
          new Kind[] {
            Kind.INTEGER,
            Kind.TEXT,
            Kind.TEXT,
            Kind.TEXT,
            Kind.TEXT,
            Kind.TEXT,
            Kind.TIMESTAMP,
            Kind.REQUEST,
            Kind.PARENT,
            Kind.PAYLOAD
          });
  private static final Struct REQUEST =
      new Struct(
          new String[] {"url", "status", "etag", "last_modified", "cursor", "line"},
          new Kind[] {Kind.TEXT, Kind.INTEGER, Kind.TEXT, Kind.TEXT, Kind.TEXT, Kind.INTEGER});
  private static final Struct PARENT =
      new Struct(new String[] {"source", "external_id"}, new Kind[] {Kind.TEXT, Kind.TEXT});

  // A field whose value did not have its declared type: the whole record goes to from_json.
  private static final Object REFUSED = new Object();

  @Override
  public Row call(byte[] value) {
    if (value == null || !startsAnObject(value) || !PayloadJson.jsonbSafe(value, 0, value.length)) {
      return null;
    }
    try (JsonParser parser = FACTORY.createParser(value)) {
      Object envelope = struct(parser, parser.nextToken(), ENVELOPE, value);
      // Not the envelope, or not of its types: from_json's call, and so is text after the object.
      if (!(envelope instanceof Row) || parser.nextToken() != null) {
        return null;
      }
      return (Row) envelope;
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }

  /** The object at {@code token} read as {@code struct}: a Row, null for JSON null, or REFUSED. */
  private static Object struct(JsonParser parser, JsonToken token, Struct struct, byte[] value)
      throws IOException {
    if (token == JsonToken.VALUE_NULL) {
      return null;
    }
    if (token != JsonToken.START_OBJECT) {
      return REFUSED;
    }
    Object[] fields = new Object[struct.names.length];
    JsonToken next;
    while ((next = parser.nextToken()) == JsonToken.FIELD_NAME) {
      int at = struct.indexOf(parser.currentName());
      JsonToken field = parser.nextToken();
      if (at < 0) {
        parser.skipChildren(); // an unknown field, which from_json skips too
        continue;
      }
      Object read = read(parser, field, struct.kinds[at], value);
      if (read == REFUSED) {
        return REFUSED;
      }
      fields[at] = read;
    }
    return next == JsonToken.END_OBJECT ? RowFactory.create(fields) : REFUSED;
  }

  private static Object read(JsonParser parser, JsonToken token, Kind kind, byte[] value)
      throws IOException {
    switch (kind) {
      case TEXT:
        return text(parser, token);
      case INTEGER:
        return integer(parser, token);
      case TIMESTAMP:
        return token == JsonToken.VALUE_NULL ? null : timestamp(parser, token);
      case REQUEST:
        return struct(parser, token, REQUEST, value);
      case PARENT:
        return struct(parser, token, PARENT, value);
      default:
        return payload(parser, value);
    }
  }

  /** The payload's bytes as the producer wrote them, whatever their JSON type. */
  private static Object payload(JsonParser parser, byte[] value) throws IOException {
    long start = parser.currentTokenLocation().getByteOffset();
    parser.skipChildren();
    // A string's body is read lazily; finish it so the position is past its closing quote.
    parser.finishToken();
    long end = parser.currentLocation().getByteOffset();
    if (start < 0 || end > value.length || end <= start) {
      return REFUSED;
    }
    return Arrays.copyOfRange(value, (int) start, (int) end);
  }

  /**
   * Whether the first byte after JSON whitespace opens an object. Jackson would skip a byte order
   * mark, or read UTF-16, where Spark's from_json finds a malformed record.
   */
  private static boolean startsAnObject(byte[] value) {
    for (byte b : value) {
      if (b != ' ' && b != '\t' && b != '\n' && b != '\r') {
        return b == '{';
      }
    }
    return false;
  }

  private static Object text(JsonParser parser, JsonToken token) throws IOException {
    if (token == JsonToken.VALUE_NULL) {
      return null;
    }
    return token == JsonToken.VALUE_STRING ? parser.getText() : REFUSED;
  }

  private static Object integer(JsonParser parser, JsonToken token) throws IOException {
    if (token == JsonToken.VALUE_NULL) {
      return null;
    }
    if (token != JsonToken.VALUE_NUMBER_INT || parser.getNumberType() != JsonParser.NumberType.INT) {
      return REFUSED;
    }
    return parser.getIntValue();
  }

  private static Object timestamp(JsonParser parser, JsonToken token) throws IOException {
    if (token != JsonToken.VALUE_STRING) {
      return REFUSED;
    }
    Instant instant = instant(parser.getText());
    return instant == null ? REFUSED : instant;
  }

  /**
   * {@code yyyy-MM-ddTHH:mm:ss[.f{1,6}](Z|±HH:MM)} as an instant, NULL for anything else: other
   * spellings (no offset, a space for the T, nanoseconds, epoch numbers) are left to Spark, which
   * reads them by its own, session-dependent rules.
   */
  static Instant instant(String s) {
    int n = s.length();
    if (n < 20
        || s.charAt(4) != '-'
        || s.charAt(7) != '-'
        || s.charAt(10) != 'T'
        || s.charAt(13) != ':'
        || s.charAt(16) != ':') {
      return null;
    }
    int year = digits(s, 0, 4);
    int month = digits(s, 5, 2);
    int day = digits(s, 8, 2);
    int hour = digits(s, 11, 2);
    int minute = digits(s, 14, 2);
    int second = digits(s, 17, 2);
    if (year < 1 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) {
      return null;
    }
    int i = 19;
    int nanos = 0;
    if (s.charAt(i) == '.') {
      int from = ++i;
      while (i < n && i - from < 7 && Character.isDigit(s.charAt(i))) {
        i++;
      }
      int count = i - from;
      if (count < 1 || count > 6) {
        return null;
      }
      int fraction = digits(s, from, count);
      for (int k = count; k < 9; k++) {
        fraction *= 10;
      }
      nanos = fraction;
    }
    if (i >= n) {
      return null;
    }
    ZoneOffset offset;
    char sign = s.charAt(i);
    if (sign == 'Z' && i + 1 == n) {
      offset = ZoneOffset.UTC;
    } else if ((sign == '+' || sign == '-') && i + 6 == n && s.charAt(i + 3) == ':') {
      int oh = digits(s, i + 1, 2);
      int om = digits(s, i + 4, 2);
      if (oh < 0 || om < 0 || oh > 18 || om > 59) {
        return null;
      }
      try {
        offset = sign == '+' ? ZoneOffset.ofHoursMinutes(oh, om) : ZoneOffset.ofHoursMinutes(-oh, -om);
      } catch (DateTimeException e) {
        return null;
      }
    } else {
      return null;
    }
    try {
      return LocalDateTime.of(year, month, day, hour, minute, second, nanos).toInstant(offset);
    } catch (DateTimeException e) {
      return null;
    }
  }

  private static int digits(String s, int from, int count) {
    int value = 0;
    for (int k = from; k < from + count; k++) {
      char c = s.charAt(k);
      if (c < '0' || c > '9') {
        return -1;
      }
      value = value * 10 + (c - '0');
    }
    return value;
  }
}
