package bhi.hapi;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.batch2.jobs.export.BulkDataExportProvider;
import ca.uhn.fhir.batch2.maintenance.JobMaintenanceServiceImpl;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.interceptor.api.Hook;
import ca.uhn.fhir.interceptor.api.Interceptor;
import ca.uhn.fhir.interceptor.api.Pointcut;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.binstore.DatabaseBinaryContentStorageSvcImpl;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.interceptor.CascadingDeleteInterceptor;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.provider.JpaSystemProvider;
import ca.uhn.fhir.jpa.provider.SubscriptionTriggeringProvider;
import ca.uhn.fhir.jpa.provider.ValueSetOperationProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import ca.uhn.fhir.jpa.subscription.match.config.SubscriptionProcessorConfig;
import ca.uhn.fhir.jpa.subscription.match.deliver.email.IEmailSender;
import ca.uhn.fhir.jpa.subscription.submit.config.SubscriptionSubmitterConfig;
import ca.uhn.fhir.jpa.topic.SubscriptionTopicConfig;
import ca.uhn.fhir.narrative2.NullNarrativeGenerator;
import ca.uhn.fhir.rest.api.server.RequestDetails;
import ca.uhn.fhir.rest.server.IncomingRequestAddressStrategy;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.exceptions.BaseServerResponseException;
import ca.uhn.fhir.rest.server.exceptions.PreconditionFailedException;
import ca.uhn.fhir.rest.server.exceptions.ResourceVersionConflictException;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import jakarta.persistence.EntityManagerFactory;
import org.apache.commons.dbcp2.BasicDataSource;
import org.hl7.fhir.dstu2.model.Subscription.SubscriptionChannelType;
import org.springframework.beans.factory.config.BeanPostProcessor;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.context.annotation.Lazy;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;
import org.springframework.transaction.annotation.EnableTransactionManagement;

import java.util.Properties;
import javax.sql.DataSource;

/**
 * HAPI FHIR R4 JPA wiring for the local test server: in-memory H2, offline validation against the
 * R4 core definitions, rest-hook subscriptions over the in-memory channel, batch2 (for $expunge and
 * delete-expunge), and one RestfulServer with the generated resource providers and the system provider.
 */
@Configuration
@EnableTransactionManagement
@Import({
	JpaR4Config.class, // FhirContext (R4), DAOs + resource providers, JpaConfig (validation chain etc.)
	HapiJpaConfig.class, // paging provider, stale-search cleanup, plain SQL full-text stubs
	ThreadPoolFactoryConfig.class,
	JpaBatch2Config.class,
	Batch2JobsConfig.class,
	SubscriptionTopicConfig.class,
	SubscriptionSubmitterConfig.class,
	SubscriptionProcessorConfig.class,
	SubscriptionChannelConfig.class
})
public class HapiServerConfig {

	/** In-memory database: nothing survives a restart, which is what tests want. */
	@Bean(destroyMethod = "close")
	public BasicDataSource dataSource() {
		BasicDataSource ds = new BasicDataSource();
		ds.setDriverClassName("org.h2.Driver");
		ds.setUrl("jdbc:h2:mem:bhi_hapi;DB_CLOSE_DELAY=-1");
		ds.setUsername("sa");
		ds.setPassword("");
		ds.setMaxTotal(20);
		return ds;
	}

	@Bean
	public JpaStorageSettings jpaStorageSettings() {
		JpaStorageSettings s = new JpaStorageSettings();
		// Tests clean up with DELETE Type?_tag=system|run-id, which may match many resources.
		s.setAllowMultipleDelete(true);
		// ...and may delete resources in any order, so references must not block deletes.
		s.setEnforceReferentialIntegrityOnDelete(false);
		s.setExpungeEnabled(true);
		s.setDeleteExpungeEnabled(true);
		s.setAllowExternalReferences(true);
		// Client-assigned ids through PUT (ids must contain a non-digit, as on a default HAPI server).
		s.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.ALPHANUMERIC);
		// Never answer a search from a cached result set: tests create then search at once.
		s.setReuseCachedSearchResultsForMillis(null);
		s.setHibernateSearchIndexFullText(false);
		s.setHibernateSearchIndexSearchParams(false);
		s.setFetchSizeDefaultMaximum(10_000);
		// Bulk Data $export: every kick-off starts a fresh job (HAPI would otherwise hand back
		// an earlier identical job's files, missing what was written since).
		s.setEnableBulkExportJobReuse(false);
		return s;
	}

	/**
	 * A batch2 job (Bulk Data $export, delete-expunge) moves on to its next step on HAPI's job
	 * maintenance pass, once a minute by default, so a $export of a handful of resources took
	 * four minutes; every 2 s it takes seconds. Set before the pass is scheduled at start-up.
	 */
	@Bean
	public static BeanPostProcessor batchJobMaintenanceEvery2s() {
		return new BeanPostProcessor() {
			@Override
			public Object postProcessAfterInitialization(Object theBean, String theName) {
				if (theBean instanceof JobMaintenanceServiceImpl maintenance) {
					maintenance.setScheduledJobFrequencyMillis(2_000);
				}
				return theBean;
			}
		};
	}

	@Bean
	public SubscriptionSettings subscriptionSettings() {
		SubscriptionSettings s = new SubscriptionSettings();
		s.addSupportedSubscriptionType(SubscriptionChannelType.RESTHOOK);
		// Activate and register new/changed Subscriptions right away rather than on the next poll.
		s.setSubscriptionChangeQueuedImmediately(true);
		s.setSubscriptionIntervalInMs(5_000);
		return s;
	}

	@Bean
	public PartitionSettings partitionSettings() {
		return new PartitionSettings();
	}

	/** Only rest-hook delivery is enabled; e-mail subscriptions are refused, this is never called. */
	@Bean
	public IEmailSender emailSender() {
		return theDetails -> {};
	}

	@Lazy
	@Bean
	public DatabaseBinaryContentStorageSvcImpl binaryStorageSvc() {
		return new DatabaseBinaryContentStorageSvcImpl();
	}

	@Primary
	@Bean
	public LocalContainerEntityManagerFactoryBean entityManagerFactory(
			DataSource theDataSource,
			ConfigurableListableBeanFactory theBeanFactory,
			FhirContext theFhirContext,
			JpaStorageSettings theStorageSettings) {
		LocalContainerEntityManagerFactoryBean emf =
				HapiEntityManagerFactoryUtil.newEntityManagerFactory(theBeanFactory, theFhirContext, theStorageSettings);
		emf.setPersistenceUnitName("HAPI_PU");
		emf.setDataSource(theDataSource);
		Properties p = new Properties();
		p.put("hibernate.dialect", HapiFhirH2Dialect.class.getName());
		p.put("hibernate.hbm2ddl.auto", "update");
		p.put("hibernate.search.enabled", "false");
		p.put("hibernate.format_sql", "false");
		p.put("hibernate.show_sql", "false");
		p.put("hibernate.jdbc.batch_size", "20");
		p.put("hibernate.cache.use_query_cache", "false");
		p.put("hibernate.cache.use_second_level_cache", "false");
		p.put("hibernate.cache.use_structured_entries", "false");
		p.put("hibernate.cache.use_minimal_puts", "false");
		emf.setJpaProperties(p);
		return emf;
	}

	@Primary
	@Bean
	public JpaTransactionManager transactionManager(EntityManagerFactory theEntityManagerFactory) {
		JpaTransactionManager tm = new JpaTransactionManager();
		tm.setEntityManagerFactory(theEntityManagerFactory);
		return tm;
	}

	@Bean
	public RestfulServer restfulServer(
			IFhirSystemDao<?, ?> theSystemDao,
			ResourceProviderFactory theResourceProviders,
			JpaSystemProvider<?, ?> theSystemProvider,
			JpaStorageSettings theStorageSettings,
			ISearchParamRegistry theSearchParamRegistry,
			IValidationSupport theValidationSupport,
			DatabaseBackedPagingProvider thePagingProvider,
			ValueSetOperationProvider theValueSetOperationProvider,
			SubscriptionTriggeringProvider theSubscriptionTriggeringProvider,
			CascadingDeleteInterceptor theCascadingDeleteInterceptor,
			BulkDataExportProvider theBulkDataExportProvider) {
		FhirContext ctx = theSystemDao.getContext();
		// No generated narratives: less work per write, and stored resources stay as sent.
		ctx.setNarrativeGenerator(new NullNarrativeGenerator());

		RestfulServer server = new RestfulServer(ctx);
		server.registerProviders(theResourceProviders.createProviders());
		server.registerProvider(theSystemProvider); // transaction/batch, history, $expunge, $meta ...
		server.registerProvider(theValueSetOperationProvider);
		server.registerProvider(theSubscriptionTriggeringProvider);
		// Bulk Data $export (system, Patient and Group level) with its status and file URLs.
		server.registerProvider(theBulkDataExportProvider);

		JpaCapabilityStatementProvider capability = new JpaCapabilityStatementProvider(
				server, theSystemDao, theStorageSettings, theSearchParamRegistry, theValidationSupport);
		capability.setImplementationDescription("bhi-fhir local HAPI FHIR R4 server");
		server.setServerConformanceProvider(capability);

		thePagingProvider.setDefaultPageSize(20);
		thePagingProvider.setMaximumPageSize(500);
		server.setPagingProvider(thePagingProvider);
		server.setDefaultResponseEncoding(ca.uhn.fhir.rest.api.EncodingEnum.JSON);
		server.setServerAddressStrategy(new IncomingRequestAddressStrategy());

		// DELETE ...&_cascade=delete also removes the resources that point at the deleted ones.
		server.registerInterceptor(theCascadingDeleteInterceptor);
		server.registerInterceptor(new IfMatchPreconditionInterceptor());
		return server;
	}

	/**
	 * HAPI reports a version mismatch on update as 409 Conflict. When the client sent If-Match,
	 * FHIR (http.html#concurrency) asks for 412 Precondition Failed, so answer that instead.
	 */
	@Interceptor
	public static class IfMatchPreconditionInterceptor {
		@Hook(Pointcut.SERVER_PRE_PROCESS_OUTGOING_EXCEPTION)
		public BaseServerResponseException toPreconditionFailed(RequestDetails theRequest, Throwable theException) {
			if (theException instanceof ResourceVersionConflictException conflict
					&& theRequest != null
					&& theRequest.getHeader("If-Match") != null) {
				PreconditionFailedException replacement = new PreconditionFailedException(conflict.getMessage());
				if (conflict.getOperationOutcome() != null) {
					replacement.setOperationOutcome(conflict.getOperationOutcome());
				}
				return replacement;
			}
			return null; // anything else: HAPI's usual handling
		}
	}
}
