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

  // The positions of the returned row's fields.
  private static final int VERSION = 0;
  private static final int SOURCE = 1;
  private static final int EXTERNAL_ID = 2;
  private static final int IDEMPOTENCY_KEY = 3;
  private static final int CONTENT_HASH = 4;
  private static final int RECORD_VERSION = 5;
  private static final int FETCHED_AT = 6;
  private static final int REQUEST = 7;
  private static final int PARENT = 8;
  private static final int PAYLOAD = 9;
  private static final int FIELDS = 10;
  // A field whose value did not have its declared type: the whole record goes to from_json.
  private static final Object REFUSED = new Object();

  @Override
  public Row call(byte[] value) {
    if (value == null || !startsAnObject(value) || !PayloadJson.jsonbSafe(value, 0, value.length)) {
      return null;
    }
    try (JsonParser parser = FACTORY.createParser(value)) {
      if (parser.nextToken() != JsonToken.START_OBJECT) {
        return null;
      }
      Object[] row = new Object[FIELDS];
      JsonToken token;
      while ((token = parser.nextToken()) == JsonToken.FIELD_NAME) {
        String name = parser.currentName();
        JsonToken next = parser.nextToken();
        Object field;
        int at;
        switch (name) {
          case "envelope_version":
            at = VERSION;
            field = integer(parser, next);
            break;
          case "source":
            at = SOURCE;
            field = text(parser, next);
            break;
          case "external_id":
            at = EXTERNAL_ID;
            field = text(parser, next);
            break;
          case "idempotency_key":
            at = IDEMPOTENCY_KEY;
            field = text(parser, next);
            break;
          case "content_hash":
            at = CONTENT_HASH;
            field = text(parser, next);
            break;
          case "version":
            at = RECORD_VERSION;
            field = text(parser, next);
            break;
          case "fetched_at":
            at = FETCHED_AT;
            field = next == JsonToken.VALUE_NULL ? null : timestamp(parser, next);
            break;
          case "request":
            at = REQUEST;
            field = request(parser, next);
            break;
          case "parent":
            at = PARENT;
            field = parent(parser, next);
            break;
          case "payload":
            at = PAYLOAD;
            long start = parser.currentTokenLocation().getByteOffset();
            parser.skipChildren();
            // A string's body is read lazily; finish it so the position is past its closing quote.
            parser.finishToken();
            long end = parser.currentLocation().getByteOffset();
            if (start < 0 || end > value.length || end <= start) {
              return null;
            }
            field = Arrays.copyOfRange(value, (int) start, (int) end);
            break;
          default:
            parser.skipChildren();
            continue;
        }
        if (field == REFUSED) {
          return null;
        }
        row[at] = field;
      }
      if (token != JsonToken.END_OBJECT || parser.nextToken() != null) {
        return null;
      }
      return RowFactory.create(row);
    } catch (IOException | RuntimeException e) {
      return null;
    }
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

  private static Object request(JsonParser parser, JsonToken token) throws IOException {
    if (token == JsonToken.VALUE_NULL) {
      return null;
    }
    if (token != JsonToken.START_OBJECT) {
      return REFUSED;
    }
    Object[] fields = new Object[6];
    while (parser.nextToken() == JsonToken.FIELD_NAME) {
      String name = parser.currentName();
      JsonToken next = parser.nextToken();
      Object field;
      int at;
      switch (name) {
        case "url":
          at = 0;
          field = text(parser, next);
          break;
        case "status":
          at = 1;
          field = integer(parser, next);
          break;
        case "etag":
          at = 2;
          field = text(parser, next);
          break;
        case "last_modified":
          at = 3;
          field = text(parser, next);
          break;
        case "cursor":
          at = 4;
          field = text(parser, next);
          break;
        case "line":
          at = 5;
          field = integer(parser, next);
          break;
        default:
          parser.skipChildren();
          continue;
      }
      if (field == REFUSED) {
        return REFUSED;
      }
      fields[at] = field;
    }
    return RowFactory.create(fields);
  }

  private static Object parent(JsonParser parser, JsonToken token) throws IOException {
    if (token == JsonToken.VALUE_NULL) {
      return null;
    }
    if (token != JsonToken.START_OBJECT) {
      return REFUSED;
    }
    Object[] fields = new Object[2];
    while (parser.nextToken() == JsonToken.FIELD_NAME) {
      String name = parser.currentName();
      JsonToken next = parser.nextToken();
      int at;
      if ("source".equals(name)) {
        at = 0;
      } else if ("external_id".equals(name)) {
        at = 1;
      } else {
        parser.skipChildren();
        continue;
      }
      Object field = text(parser, next);
      if (field == REFUSED) {
        return REFUSED;
      }
      fields[at] = field;
    }
    return RowFactory.create(fields);
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
