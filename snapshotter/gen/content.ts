import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { ContentClient as _containerd_services_content_v1_ContentClient, ContentDefinition as _containerd_services_content_v1_ContentDefinition } from './containerd/services/content/v1/Content.js';
import type { Info as _containerd_services_content_v1_Info, Info__Output as _containerd_services_content_v1_Info__Output } from './containerd/services/content/v1/Info.js';
import type { InfoRequest as _containerd_services_content_v1_InfoRequest, InfoRequest__Output as _containerd_services_content_v1_InfoRequest__Output } from './containerd/services/content/v1/InfoRequest.js';
import type { InfoResponse as _containerd_services_content_v1_InfoResponse, InfoResponse__Output as _containerd_services_content_v1_InfoResponse__Output } from './containerd/services/content/v1/InfoResponse.js';
import type { ListStatusesRequest as _containerd_services_content_v1_ListStatusesRequest, ListStatusesRequest__Output as _containerd_services_content_v1_ListStatusesRequest__Output } from './containerd/services/content/v1/ListStatusesRequest.js';
import type { ListStatusesResponse as _containerd_services_content_v1_ListStatusesResponse, ListStatusesResponse__Output as _containerd_services_content_v1_ListStatusesResponse__Output } from './containerd/services/content/v1/ListStatusesResponse.js';
import type { ReadContentRequest as _containerd_services_content_v1_ReadContentRequest, ReadContentRequest__Output as _containerd_services_content_v1_ReadContentRequest__Output } from './containerd/services/content/v1/ReadContentRequest.js';
import type { ReadContentResponse as _containerd_services_content_v1_ReadContentResponse, ReadContentResponse__Output as _containerd_services_content_v1_ReadContentResponse__Output } from './containerd/services/content/v1/ReadContentResponse.js';
import type { Status as _containerd_services_content_v1_Status, Status__Output as _containerd_services_content_v1_Status__Output } from './containerd/services/content/v1/Status.js';
import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from './google/protobuf/Timestamp.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  containerd: {
    services: {
      content: {
        v1: {
          Content: SubtypeConstructor<typeof grpc.Client, _containerd_services_content_v1_ContentClient> & { service: _containerd_services_content_v1_ContentDefinition }
          Info: MessageTypeDefinition<_containerd_services_content_v1_Info, _containerd_services_content_v1_Info__Output>
          InfoRequest: MessageTypeDefinition<_containerd_services_content_v1_InfoRequest, _containerd_services_content_v1_InfoRequest__Output>
          InfoResponse: MessageTypeDefinition<_containerd_services_content_v1_InfoResponse, _containerd_services_content_v1_InfoResponse__Output>
          ListStatusesRequest: MessageTypeDefinition<_containerd_services_content_v1_ListStatusesRequest, _containerd_services_content_v1_ListStatusesRequest__Output>
          ListStatusesResponse: MessageTypeDefinition<_containerd_services_content_v1_ListStatusesResponse, _containerd_services_content_v1_ListStatusesResponse__Output>
          ReadContentRequest: MessageTypeDefinition<_containerd_services_content_v1_ReadContentRequest, _containerd_services_content_v1_ReadContentRequest__Output>
          ReadContentResponse: MessageTypeDefinition<_containerd_services_content_v1_ReadContentResponse, _containerd_services_content_v1_ReadContentResponse__Output>
          Status: MessageTypeDefinition<_containerd_services_content_v1_Status, _containerd_services_content_v1_Status__Output>
        }
      }
    }
  }
  google: {
    protobuf: {
      Timestamp: MessageTypeDefinition<_google_protobuf_Timestamp, _google_protobuf_Timestamp__Output>
    }
  }
}

