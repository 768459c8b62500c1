package dubbo

// Status is a response's status byte.
type Status uint8

// Statuses, as org.apache.dubbo.remoting.exchange.Response names them. A
// Java consumer raises a TimeoutException for the two timeouts and a
// RemotingException carrying the error message for every other status but
// OK.
const (
	StatusOK                        Status = 20
	StatusClientTimeout             Status = 30
	StatusServerTimeout             Status = 31
	StatusBadRequest                Status = 40
	StatusBadResponse               Status = 50
	StatusServiceNotFound           Status = 60
	StatusServiceError              Status = 70
	StatusServerError               Status = 80
	StatusClientError               Status = 90
	StatusServerThreadpoolExhausted Status = 100
)

// String returns the Java name of s (OK, BAD_REQUEST...), or its number.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "OK"
	case StatusClientTimeout:
		return "CLIENT_TIMEOUT"
	case StatusServerTimeout:
		return "SERVER_TIMEOUT"
	case StatusBadRequest:
		return "BAD_REQUEST"
	case StatusBadResponse:
		return "BAD_RESPONSE"
	case StatusServiceNotFound:
		return "SERVICE_NOT_FOUND"
	case StatusServiceError:
		return "SERVICE_ERROR"
	case StatusServerError:
		return "SERVER_ERROR"
	case StatusClientError:
		return "CLIENT_ERROR"
	case StatusServerThreadpoolExhausted:
		return "SERVER_THREADPOOL_EXHAUSTED_ERROR"
	}
	return "status " + itoa(int(s))
}

// Valid reports whether s is one of the statuses above (Envoy refuses a
// response with any other).
func (s Status) Valid() bool {
	switch s {
	case StatusOK, StatusClientTimeout, StatusServerTimeout, StatusBadRequest,
		StatusBadResponse, StatusServiceNotFound, StatusServiceError, StatusServerError,
		StatusClientError, StatusServerThreadpoolExhausted:
		return true
	}
	return false
}

// Serialization is the serialization id of a frame's body.
type Serialization uint8

// Serialization ids, as org.apache.dubbo.common.serialize.Constants
// numbers them. Only Hessian2 bodies are decoded; frames of the others
// are relayed by header only.
const (
	Hessian2      Serialization = 2
	JavaSerial    Serialization = 3
	CompactedJava Serialization = 4
	FastJSON      Serialization = 6
	NativeJava    Serialization = 7
	Kryo          Serialization = 8
	FST           Serialization = 9
	NativeHessian Serialization = 10
	Avro          Serialization = 11
	Protostuff    Serialization = 12
	Gson          Serialization = 16
	Jackson       Serialization = 18
	ProtobufJSON  Serialization = 21
	Protobuf      Serialization = 22
	FastJSON2     Serialization = 23
	Kryo2         Serialization = 25
	MsgPack       Serialization = 27
	Fury          Serialization = 28
)

var serializationNames = map[Serialization]string{
	Hessian2: "hessian2", JavaSerial: "java", CompactedJava: "compactedjava",
	FastJSON: "fastjson", NativeJava: "nativejava", Kryo: "kryo", FST: "fst",
	NativeHessian: "native-hessian", Avro: "avro", Protostuff: "protostuff",
	Gson: "gson", Jackson: "jackson", ProtobufJSON: "protobuf-json",
	Protobuf: "protobuf", FastJSON2: "fastjson2", Kryo2: "kryo2",
	MsgPack: "msgpack", Fury: "fury",
}

// String returns the name Dubbo configures s by, or its number.
func (s Serialization) String() string {
	if n, ok := serializationNames[s]; ok {
		return n
	}
	return "serialization " + itoa(int(s))
}
